"""The results a claim reads: the simulations, theories and sweeps of its experiments, and
the choice of runs by their parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import xarray as xr

from tsmeta.claims.spec import matches
from tsmeta.io import open_dataset, params_from_attrs


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
