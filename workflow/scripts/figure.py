from tsmeta.stages import log_to, make_figure

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_figure(sm.input[0], dict(sm.params.options), [sm.output.png, sm.output.pdf])
