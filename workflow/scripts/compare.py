from tsmeta.stages import log_to, make_comparison

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_comparison(sm.wildcards.experiment, sm.input.sims, sm.input.theories, sm.output[0])
