"""The results a claim reads: the simulations, theories and sweeps of its experiments, and
the choice of runs by their parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import xarray as xr

from tsmeta.io import open_dataset, params_from_attrs
from tsmeta.params import RunParams


def matches(params: RunParams | dict, chosen: dict) -> bool:
    """Whether a run's parameters have every value of `chosen` (a list: any of its values;
    numbers compared to a relative 1e-6, so 3.4641016 picks sqrt(12))."""
    values = params if isinstance(params, dict) else params.to_dict()
    for key, wanted in chosen.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        have = values.get(key)
        if not any(same_value(have, option) for option in options):
            return False
    return True


def same_value(a, b) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return a == b


@dataclass
class Results:
    """Per experiment: its runs' simulations and theories (Datasets, run order) and its
    theory sweep. `from_files` opens the files the claims rule is given."""

    sims: dict[str, list[xr.Dataset]] = field(default_factory=dict)
    theories: dict[str, list[xr.Dataset]] = field(default_factory=dict)
    sweeps: dict[str, xr.Dataset] = field(default_factory=dict)

    @classmethod
    def from_files(cls, sims: dict, theories: dict, sweeps: dict) -> Results:
        """{experiment: [path, ...]} for sims and theories, {experiment: path} for sweeps."""
        return cls(
            {exp: [open_dataset(p, "simulate") for p in paths] for exp, paths in sims.items()},
            {exp: [open_dataset(p, "theory") for p in paths] for exp, paths in theories.items()},
            {exp: open_dataset(path) for exp, path in sweeps.items()},
        )

    def runs(self, experiments, source: str, chosen: dict) -> list[xr.Dataset]:
        """The runs of `experiments` (simulations for source 'sim', else theories) whose
        parameters match `chosen`; a run shared by two experiments once."""
        table = self.sims if source == "sim" else self.theories
        found: dict[str, xr.Dataset] = {}
        for exp in experiments:
            for ds in table.get(exp, []):
                if matches(params_from_attrs(ds.attrs), chosen):
                    found.setdefault(ds.attrs["run_name"], ds)
        return list(found.values())

    def sweep(self, experiments) -> tuple[str, xr.Dataset]:
        """The first theory sweep among `experiments`, with its experiment's name."""
        for exp in experiments:
            if exp in self.sweeps:
                return exp, self.sweeps[exp]
        raise KeyError(f"none of the experiments {list(experiments)} has a theory sweep")
