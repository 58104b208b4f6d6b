rule tasks:
    """Meta-teacher B and initial meta-learner (J, w0) of every seed of a run."""
    output:
        PATHS.tasks("{run}"),
    log:
        PATHS.log("tasks", "{run}"),
    conda:
        "../../envs/tsmeta.yaml"
    resources:
        runtime=PLAN.short_job_runtime,
    params:
        run=run_params,
    script:
        "../scripts/tasks.py"
