from tsmeta.stages import group_variants, log_to, make_figure_data

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_figure_data(
        sm.wildcards.experiment,
        dict(sm.params.options),
        sm.input.sims,
        sm.input.theories,
        sm.output[0],
        variants=group_variants(sm.params.variant_labels, sm.input.variants),
        compare=sm.input.compare[0] if sm.input.compare else None,
        sweep=sm.input.sweep[0] if sm.input.sweep else None,
    )
