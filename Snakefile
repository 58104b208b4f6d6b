# tsmeta: dynamics of meta-learning in the teacher-student scenario (arXiv 2408.12545).
# Stages: tasks -> simulate -> theory -> compare -> figure, one rule file each.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# envs/tsmeta.yaml installs the package from here (pip expands ${TSMETA_SOURCE})
os.environ.setdefault("TSMETA_SOURCE", workflow.basedir)
from tsmeta import config as tsconfig


configfile: "config/config.yaml"


tsconfig.validate(config)  # one clear message naming the bad key, before any job
# Snakemake's own check. Defaults are not injected: a `base` filled with every default
# would mask the config's `defaults`; tsmeta.config applies them in that order instead.
validate(config, "config/schema.yaml", set_default=False)
PLAN = tsconfig.expand(config)
RESULTS = PLAN.results


include: "workflow/rules/common.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_figures(),
