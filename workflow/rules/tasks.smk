rule tasks:
    """Meta-teacher B and initial meta-learner (J, w0) of every seed of a run."""
    output:
        f"{RESULTS}/runs/{{run}}/tasks.nc",
    log:
        f"{RESULTS}/logs/tasks/{{run}}.log",
    conda:
        "../../envs/tsmeta.yaml"
    params:
        run=run_params,
    script:
        "../scripts/tasks.py"
