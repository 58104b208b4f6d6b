rule compare:
    """Simulation against theory and theory variants for every run of an experiment:
    relabelled deviations and first-stage RMS (the figures read them)."""
    input:
        sims=sim_files,
        theories=theory_files,
        variants=variant_files,
    output:
        PATHS.compare("{experiment}"),
    log:
        PATHS.log("compare", "{experiment}"),
    conda:
        "../../envs/tsmeta.yaml"
    resources:
        runtime=PLAN.short_job_runtime,
    params:
        window=compare_window,
        variant_labels=variant_labels,
    script:
        "../scripts/compare.py"
