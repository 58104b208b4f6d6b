from tsmeta.stages import group_variants, log_to, make_comparison

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_comparison(
        sm.wildcards.experiment,
        sm.input.sims,
        sm.input.theories,
        sm.output[0],
        variants=group_variants(sm.params.variant_labels, sm.input.variants),
        **sm.params.window,
    )
