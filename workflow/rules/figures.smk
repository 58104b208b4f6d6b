rule figure:
    """One paper figure from its runs (simulation, theory) and its theory sweep."""
    input:
        sims=experiment_files("sim"),
        theories=experiment_files("theory"),
        theories_nofv=experiment_files("theory_nofv"),
        compare=compare_file,
        sweep=sweep_file,
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
        description=lambda wildcards: PLAN.experiments[wildcards.experiment].description,
    script:
        "../scripts/figure.py"
