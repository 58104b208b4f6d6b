from tsmeta.stages import group_variants, log_to, make_figure

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_figure(
        sm.wildcards.experiment,
        dict(sm.params.options),
        sm.input.sims,
        sm.input.theories,
        [sm.output.png, sm.output.pdf],
        variants=group_variants(sm.params.variant_labels, sm.input.variants),
        compare=sm.input.compare[0] if sm.input.compare else None,
        sweep=sm.input.sweep[0] if sm.input.sweep else None,
    )
