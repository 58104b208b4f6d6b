rule figure_data:
    """Every number of one paper figure (curves, bands, fits, theory quantities), from its
    runs (simulation, theory, variants), its comparison and its theory sweep."""
    input:
        sims=sim_files,
        theories=theory_files,
        variants=variant_files,
        compare=compare_file,
        sweep=sweep_file,
    output:
        PATHS.figure("{experiment}", "nc"),
    log:
        PATHS.log("figure_data", "{experiment}"),
    conda:
        "../../envs/tsmeta.yaml"
    resources:
        runtime=PLAN.short_job_runtime,
    params:
        options=lambda wildcards: figure_options(wildcards, "data"),
        variant_labels=variant_labels,
    script:
        "../scripts/figure_data.py"


rule figure:
    """One paper figure painted from its data: a paint option (figure_kinds) reruns only this."""
    input:
        PATHS.figure("{experiment}", "nc"),
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
    resources:
        runtime=PLAN.short_job_runtime,
    params:
        options=lambda wildcards: figure_options(wildcards, "paint"),
        caption=figure_caption,
        description=lambda wildcards: tsconfig.rst_text(
            PLAN.experiments[wildcards.experiment].description
        ),
    script:
        "../scripts/figure.py"
