rule figure:
    """One paper figure: simulation and theory side by side."""
    input:
        sims=experiment_files("sim"),
        theories=experiment_files("theory"),
        compare=f"{RESULTS}/experiments/{{experiment}}/compare.nc",
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}.png",
            caption="../report/figure.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
    log:
        f"{RESULTS}/logs/figure/{{experiment}}.log",
    conda:
        "../../envs/tsmeta.yaml"
    params:
        options=lambda wildcards: PLAN.experiments[wildcards.experiment].figure,
    script:
        "../scripts/figure.py"
