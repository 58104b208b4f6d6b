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
            PATHS.figure("{experiment}", "png"),
            caption="../report/figure.rst",
            category="Figures",
        ),
        pdf=PATHS.figure("{experiment}", "pdf"),
    log:
        PATHS.log("figure", "{experiment}"),
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
