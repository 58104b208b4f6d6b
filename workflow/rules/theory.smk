rule theory:
    """Order-parameter ODE of a run, one trajectory per seed from its own initial overlaps."""
    input:
        tasks=f"{RESULTS}/runs/{{run}}/tasks.nc",
    output:
        f"{RESULTS}/runs/{{run}}/theory.nc",
    log:
        f"{RESULTS}/logs/theory/{{run}}.log",
    conda:
        "../../envs/tsmeta.yaml"
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    params:
        run=run_params,
        settings=lambda wildcards: PLAN.theory_settings[wildcards.run],
    script:
        "../scripts/theory.py"
