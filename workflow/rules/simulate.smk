rule simulate:
    """Finite-N simulation of a run, all seeds batched (PyTorch)."""
    input:
        tasks=f"{RESULTS}/runs/{{run}}/tasks.nc",
    output:
        f"{RESULTS}/runs/{{run}}/sim.nc",
    log:
        f"{RESULTS}/logs/simulate/{{run}}.log",
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
        checkpoint=lambda wildcards: f"{RESULTS}/runs/{wildcards.run}/sim.ckpt",
    script:
        "../scripts/simulate.py"
