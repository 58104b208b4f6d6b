from tsmeta.params import RunParams
from tsmeta.stages import log_to, make_segment, set_threads

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    set_threads(sm.threads)
    make_segment(
        sm.input.tasks,
        RunParams.from_dict(sm.params.run),
        dict(sm.params.settings),
        sm.output[0],
        stop_at=sm.params.stop_at,
        resume_from=sm.input.previous[0] if sm.input.previous else None,
    )
