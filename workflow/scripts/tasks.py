from tsmeta.params import RunParams
from tsmeta.stages import log_to, make_tasks

with log_to(snakemake.log[0]):  # noqa: F821
    make_tasks(RunParams.from_dict(snakemake.params.run), snakemake.output[0])  # noqa: F821
