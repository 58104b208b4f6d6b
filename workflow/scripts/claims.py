from tsmeta.stages import log_to, make_claims

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_claims(
        dict(sm.params.claims),
        dict(sm.params.inputs),
        sm.output.nc,
        sm.output.md,
        sm.params.title,
        dict(sm.params.left_out),
    )
