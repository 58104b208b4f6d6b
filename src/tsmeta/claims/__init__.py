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

from tsmeta.claims.inputs import Results, matches
from tsmeta.claims.kinds import TEST_KINDS
from tsmeta.claims.outcome import (
    CONTRADICTED,
    HOLDS,
    HOLDS_UNDER_CONDITIONS,
    NOT_SEEN,
    VERDICTS,
    Group,
    Outcome,
)
from tsmeta.claims.quantities import QUANTITIES
from tsmeta.claims.spec import KIND_PARAMETERS, READS_RUNS, ClaimTest
from tsmeta.claims.table import claims_dataset, claims_markdown, evaluate, evaluate_all

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
