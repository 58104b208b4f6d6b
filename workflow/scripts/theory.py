from tsmeta.params import RunParams
from tsmeta.stages import log_to, make_theory

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_theory(
        sm.input.tasks, RunParams.from_dict(sm.params.run), dict(sm.params.settings), sm.output[0]
    )
