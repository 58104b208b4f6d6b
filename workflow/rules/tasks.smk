rule tasks:
    """Meta-teacher B and initial meta-learner (J, w0) of every seed of a run."""
    output:
        PATHS.tasks("{run}"),
    log:
        PATHS.log("tasks", "{run}"),
    conda:
        "../../envs/tsmeta.yaml"
    params:
        run=run_params,
    script:
        "../scripts/tasks.py"
