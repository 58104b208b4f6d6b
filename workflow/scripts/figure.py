from tsmeta.stages import log_to, make_figure

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_figure(
        sm.wildcards.experiment,
        dict(sm.params.options),
        sm.input.sims,
        sm.input.theories,
        [sm.output.png, sm.output.pdf],
        theories_nofv=sm.input.theories_nofv,
        sweep=sm.input.sweep[0] if sm.input.sweep else None,
    )
