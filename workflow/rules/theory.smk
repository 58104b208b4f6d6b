rule theory:
    """Order-parameter ODE of a run, one trajectory per seed from its own initial overlaps."""
    input:
        tasks=PATHS.tasks("{run}"),
    output:
        PATHS.theory("{run}"),
    log:
        PATHS.log("theory", "{run}"),
    conda:
        "../../envs/tsmeta.yaml"
    threads: 1
    resources:
        # the cost model's estimates with their margins (tsmeta.cost, `tsmeta plan`)
        runtime=lambda wildcards: PLAN.theory_costs[wildcards.run].runtime_min,
        mem_mb=lambda wildcards: PLAN.theory_costs[wildcards.run].mem_mb,
    params:
        run=run_params,
        settings=lambda wildcards: PLAN.theory_settings[wildcards.run],
    script:
        "../scripts/theory.py"


use rule theory as theory_variant with:
    output:
        PATHS.theory("{run}", "{variant}"),
    log:
        PATHS.log("theory_{variant}", "{run}"),
    resources:
        runtime=lambda wildcards: PLAN.variant_costs[wildcards.run][
            wildcards.variant
        ].runtime_min,
        mem_mb=lambda wildcards: PLAN.variant_costs[wildcards.run][
            wildcards.variant
        ].mem_mb,
    params:
        run=run_params,
        settings=lambda wildcards: PLAN.variant_settings[wildcards.run][
            wildcards.variant
        ],


rule theory_sweep:
    """Batched theory-only sweep of an experiment (phase diagrams, threshold searches)."""
    output:
        PATHS.sweep("{experiment}"),
    log:
        PATHS.log("theory_sweep", "{experiment}"),
    conda:
        "../../envs/tsmeta.yaml"
    threads: 1
    resources:
        runtime=lambda wildcards: PLAN.sweep_costs[wildcards.experiment].runtime_min,
        mem_mb=lambda wildcards: PLAN.sweep_costs[wildcards.experiment].mem_mb,
    params:
        sweep=lambda wildcards: PLAN.experiments[wildcards.experiment].theory_sweep,
        settings=lambda wildcards: PLAN.experiments[
            wildcards.experiment
        ].theory_settings,
    script:
        "../scripts/sweep.py"
