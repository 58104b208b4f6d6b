rule simulate:
    """Finite-N simulation of a run, all seeds batched (PyTorch)."""
    input:
        tasks=PATHS.tasks("{run}"),
    output:
        PATHS.sim("{run}"),
    log:
        PATHS.log("simulate", "{run}"),
    conda:
        "../../envs/tsmeta.yaml"
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
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
