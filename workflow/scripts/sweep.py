from tsmeta.stages import log_to, make_sweep

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_sweep(dict(sm.params.sweep), dict(sm.params.settings), sm.output[0])
