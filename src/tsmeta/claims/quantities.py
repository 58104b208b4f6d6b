"""Per-seed quantities of a run that the claims' tests count or compare. Each takes a
simulation or theory Dataset and the claim's test settings and returns one value per seed;
`binary` ones are 0/1 (NaN: the seed does not count) and are read as fractions.

tsmeta.analysis (and scipy with it) is imported inside the functions: the config check
reads this table, and the config package stays free of scipy (tests/unit/test_figure_kinds).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import xarray as xr


def alpha_final(ds: xr.Dataset) -> float:
    return float(ds["alpha"].values[-1])


def censored(ds: xr.Dataset, test) -> bool:
    """Whether the run ends before the claim's alpha, so that a seed not there yet may still
    get there."""
    return test.alpha is not None and alpha_final(ds) < test.alpha


def reached(ds: xr.Dataset, test) -> np.ndarray:
    """1 where eps_meta falls below test.level by test.alpha (the run's end where null)."""
    from tsmeta.analysis import escape_alphas

    crossing = escape_alphas(ds, test.level)
    by = alpha_final(ds) if test.alpha is None else test.alpha
    return np.where(np.isfinite(crossing) & (crossing <= by), 1.0, 0.0)


def escape_alpha(ds: xr.Dataset, test) -> np.ndarray:
    """The first alpha with eps_meta < test.level; the run's final alpha where it never
    gets there (a lower bound, so a later escape is never overstated)."""
    from tsmeta.analysis import escape_alphas

    crossing = escape_alphas(ds, test.level, interpolate=True)
    return np.where(np.isfinite(crossing), crossing, alpha_final(ds))


def log10_final_error(ds: xr.Dataset, test) -> np.ndarray:
    """log10 of eps_meta at the seed's last finite record (NaN for a seed without one)."""
    from tsmeta.analysis import last_finite_records

    eps = ds["eps_meta"].transpose("seed", "alpha").values
    out = np.full(eps.shape[0], np.nan)
    for s, last in enumerate(last_finite_records(eps)):
        if last >= 0 and eps[s, last] > 0:
            out[s] = math.log10(eps[s, last])
    return out


def specialised_at(ds: xr.Dataset, record: int, seed: int) -> float:
    """1 where the seed's units have specialised at the record (every matched |R| above
    analysis.SPECIALISED), 0 where not, NaN for a missing record."""
    if record < 0:
        return math.nan
    R = ds["R"].transpose("seed", "alpha", "k", "n").values[seed, record]
    from tsmeta.analysis import specialised_alignment

    return 0.0 if specialised_alignment(R) is None else 1.0


def specialised_at_end(ds: xr.Dataset, test) -> np.ndarray:
    """1 where the units have specialised at the seed's last finite record."""
    R = ds["R"].transpose("seed", "alpha", "k", "n").values
    from tsmeta.analysis import last_finite_records

    lasts = last_finite_records(R)
    return np.array([specialised_at(ds, last, s) for s, last in enumerate(lasts)])


def specialised_at_level(ds: xr.Dataset, test) -> np.ndarray:
    """At the first record with eps_meta < test.level: 1 where the units have specialised
    by then, 0 where not; NaN for a seed that never gets below the level."""
    eps = ds["eps_meta"].transpose("seed", "alpha").values
    out = np.full(eps.shape[0], np.nan)
    for s, series in enumerate(eps):
        below = np.flatnonzero(series < test.level)
        if len(below):
            out[s] = specialised_at(ds, int(below[0]), s)
    return out


class Quantity(NamedTuple):
    values: object  # (Dataset, test) -> per-seed values
    binary: bool
    description: str


QUANTITIES = {
    "reached": Quantity(reached, True, "fraction of seeds with eps_meta < {level} by alpha {by}"),
    "specialised": Quantity(
        specialised_at_end, True, "fraction of seeds whose units have specialised at the end"
    ),
    "specialised_at_level": Quantity(
        specialised_at_level,
        True,
        "fraction of the seeds reaching eps_meta < {level} that have specialised by then",
    ),
    "escape_alpha": Quantity(escape_alpha, False, "first alpha with eps_meta < {level}"),
    "log10_final_error": Quantity(log10_final_error, False, "log10 eps_meta at the end"),
}
