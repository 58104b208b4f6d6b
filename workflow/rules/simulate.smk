rule simulate:
    """Finite-N simulation of a run, all seeds batched (PyTorch); the last job of a run that
    max_runtime splits into segments."""
    input:
        tasks=PATHS.tasks("{run}"),
        previous=previous_segment,
    output:
        PATHS.sim("{run}"),
    log:
        PATHS.log("simulate", "{run}"),
    conda:
        "../../envs/tsmeta.yaml"
    threads: lambda wildcards: cost(wildcards).threads
    resources:
        # the cost model's estimates with their margins (tsmeta.cost, `tsmeta plan`)
        runtime=lambda wildcards: cost(wildcards).runtime_min,
        mem_mb=lambda wildcards: cost(wildcards).mem_mb,
        # one GPU through the SLURM plugin's `gpu` resource when the run asks for CUDA
        gpu=lambda wildcards: int(
            PLAN.sim_settings[wildcards.run].get("device") == "cuda"
        ),
    params:
        run=run_params,
        settings=lambda wildcards: PLAN.sim_settings[wildcards.run],
        checkpoint=lambda wildcards: PATHS.checkpoint(wildcards.run),
    script:
        "../scripts/simulate.py"


rule simulate_segment:
    """One job of a run longer than max_runtime: from the previous segment's state (or the
    start) to its stop, its state saved for the next job."""
    input:
        tasks=PATHS.tasks("{run}"),
        previous=previous_segment,
    output:
        temp(PATHS.segment("{run}", "{segment}")),
    log:
        PATHS.log("simulate_segment", "{run}.{segment}"),
    conda:
        "../../envs/tsmeta.yaml"
    threads: lambda wildcards: cost(wildcards).threads
    resources:
        runtime=lambda wildcards: cost(wildcards).runtime_min,
        mem_mb=lambda wildcards: cost(wildcards).mem_mb,
        gpu=lambda wildcards: int(
            PLAN.sim_settings[wildcards.run].get("device") == "cuda"
        ),
    params:
        run=run_params,
        settings=lambda wildcards: PLAN.sim_settings[wildcards.run],
        stop_at=lambda wildcards: cost(wildcards).stop_of(int(wildcards.segment)),
    script:
        "../scripts/simulate_segment.py"
