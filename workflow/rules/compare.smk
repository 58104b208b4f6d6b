rule compare:
    """Simulation minus theory for every run of an experiment."""
    input:
        sims=experiment_files("sim"),
        theories=experiment_files("theory"),
    output:
        f"{RESULTS}/experiments/{{experiment}}/compare.nc",
    log:
        f"{RESULTS}/logs/compare/{{experiment}}.log",
    conda:
        "../../envs/tsmeta.yaml"
    script:
        "../scripts/compare.py"
