# tsmeta: dynamics of meta-learning in the teacher-student scenario (arXiv 2408.12545).
# Stages: tasks -> simulate -> theory -> compare -> figure data -> figure, one rule file each;
# the claims rule reads the results of the experiments its claims name.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# envs/tsmeta.yaml installs the package from here (pip expands ${TSMETA_SOURCE})
os.environ.setdefault("TSMETA_SOURCE", workflow.basedir)
from tsmeta import config as tsconfig

# The config: the --configfile files (else config/config.yaml), then --config key=value, read
# with the project's YAML loader (a repeated key is an error naming it and its line, 1e6 is a
# number, a syntax error in config/config.yaml names the file and line). Snakemake itself has
# read any --configfile before this line, with a message of its own on a syntax error there.
config.clear()
config.update(
    tsconfig.workflow_config(
        workflow.configfiles, workflow.config_settings.config, workflow.basedir
    )
)
PLAN = tsconfig.validate(config)  # one clear message naming the bad key, before any job
# Snakemake's own check. Defaults are not injected: a `base` filled with every default
# would mask the config's `defaults`; tsmeta.config applies them in that order instead.
validate(config, "config/schema.yaml", set_default=False)
RESULTS = PLAN.results


include: "workflow/rules/common.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"


rule all:
    """Every figure and every file it is made from: a missing (deleted, or set aside as
    unreadable) intermediate is made again by a plain `snakemake --cores all`."""
    default_target: True
    input:
        all_outputs(),
