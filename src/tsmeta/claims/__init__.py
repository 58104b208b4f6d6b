"""The paper's claims as a declarative, tested table (config key `claims`, the `claims`
rule, `tsmeta claims`). One module per job:

- `spec`: a claim's test as the config gives it (ClaimTest, the parameters of each kind);
- `inputs`: the results a claim reads (Results) and the choice of runs by parameters;
- `quantities`: per-seed quantities (reached a level, escape alpha, final error, ...);
- `kinds`: the test kinds (fraction, difference, power_law, region);
- `outcome`: what a test returns and the verdicts;
- `table`: every claim evaluated, as claims.nc and claims.md.

The statistics come from `tsmeta.analysis` (crossings, proportions, fits, minimal rates).
"""

import importlib

from tsmeta.claims.outcome import (
    CONTRADICTED,
    HOLDS,
    HOLDS_UNDER_CONDITIONS,
    NOT_SEEN,
    VERDICTS,
    Group,
    Outcome,
)
from tsmeta.claims.spec import KIND_PARAMETERS, READS_RUNS, ClaimTest, matches

# read on first use: they import tsmeta.analysis (scipy), which the config check must not
LAZY_NAMES = {
    "QUANTITIES": "quantities",
    "Results": "inputs",
    "TEST_KINDS": "kinds",
    "claims_dataset": "table",
    "claims_markdown": "table",
    "evaluate": "table",
    "evaluate_all": "table",
}


def __getattr__(name: str):
    if name in LAZY_NAMES:
        return getattr(importlib.import_module(f"tsmeta.claims.{LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module 'tsmeta.claims' has no attribute {name!r}")


__all__ = [
    "CONTRADICTED",
    "HOLDS",
    "HOLDS_UNDER_CONDITIONS",
    "KIND_PARAMETERS",
    "NOT_SEEN",
    "QUANTITIES",
    "READS_RUNS",
    "TEST_KINDS",
    "VERDICTS",
    "ClaimTest",
    "Group",
    "Outcome",
    "Results",
    "claims_dataset",
    "claims_markdown",
    "evaluate",
    "evaluate_all",
    "matches",
]
