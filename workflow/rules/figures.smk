rule figure:
    """One paper figure from its runs (simulation, theory, variants), its comparison and its
    theory sweep."""
    input:
        sims=sim_files,
        theories=theory_files,
        variants=variant_files,
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
        variant_labels=variant_labels,
        description=lambda wildcards: tsconfig.rst_text(
            PLAN.experiments[wildcards.experiment].description
        ),
    script:
        "../scripts/figure.py"
