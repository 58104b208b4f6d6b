"""The file layout of the results folder, written once: the workflow rules and the CLI use it.

    <results>/runs/<run>/tasks.nc, sim.nc, theory.nc, theory_<variant>.nc, sim.ckpt
    <results>/experiments/<experiment>/compare.nc, sweep.nc
    <results>/figures/<experiment>.<format>
    <results>/logs/<rule>/<name>.log
    <results>/claims.nc, claims.md

Names may be Snakemake wildcards ("{run}"), so that the rules' patterns come from here too.
Which files a plan makes (`run_files`, `experiment_files`, `result_files`) is decided here
as well, so that `snakemake` and `tsmeta check` see the same files.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGE_FILES = {"tasks": "tasks", "simulate": "sim", "theory": "theory"}  # <stage>: <file>.nc
FIGURE_FORMATS = ("nc", "png", "pdf")  # its data, then its paintings


@dataclass(frozen=True)
class ResultPaths:
    """The paths under one results folder (`root`, e.g. config key `results`)."""

    root: str = "results"

    def run(self, run: str, stage: str) -> str:
        """The file of a run's stage (tasks, simulate, theory)."""
        return f"{self.root}/runs/{run}/{STAGE_FILES[stage]}.nc"

    def tasks(self, run: str) -> str:
        return self.run(run, "tasks")

    def sim(self, run: str) -> str:
        return self.run(run, "simulate")

    def theory(self, run: str, variant: str | None = None) -> str:
        """The run's own theory, or one of its variants (`theory_variants`)."""
        if variant is None:
            return self.run(run, "theory")
        return f"{self.root}/runs/{run}/theory_{variant}.nc"

    def checkpoint(self, run: str) -> str:
        return f"{self.root}/runs/{run}/sim.ckpt"

    def segment(self, run: str, segment) -> str:
        """The state at the end of segment `segment` of a run split into several jobs."""
        return f"{self.root}/runs/{run}/segment_{segment}.ckpt"

    def compare(self, experiment: str) -> str:
        return f"{self.root}/experiments/{experiment}/compare.nc"

    def sweep(self, experiment: str) -> str:
        return f"{self.root}/experiments/{experiment}/sweep.nc"

    def figure(self, experiment: str, fmt: str) -> str:
        return f"{self.root}/figures/{experiment}.{fmt}"

    def claims(self, fmt: str) -> str:
        """The claims table (nc: every statistic with its uncertainty; md: the table)."""
        return f"{self.root}/claims.{fmt}"

    def log(self, rule: str, name: str) -> str:
        return f"{self.root}/logs/{rule}/{name}.log"

    # --- the files a plan makes (tsmeta.config.Plan) --------------------------------------

    def run_files(self, plan, experiment: str, stage: str) -> list:
        """The stage's file of every run of the experiment; none where it skips the stage
        (tasks: where it has any stage)."""
        return [self.run(r, stage) for r in plan.experiments[experiment].runs_with(stage)]

    def variant_files(self, plan, experiment: str) -> list:
        """theory_<label>.nc of every theory variant of the experiment, label-major."""
        exp = plan.experiments[experiment]
        runs = exp.runs_with("theory")
        return [self.theory(r, label) for label in exp.theory_variants for r in runs]

    def compare_files(self, plan, experiment: str) -> list:
        """[compare.nc] where the experiment both simulates and integrates its runs, else []."""
        exp = plan.experiments[experiment]
        if {"simulate", "theory"} <= set(exp.stages) and exp.runs:
            return [self.compare(experiment)]
        return []

    def sweep_files(self, plan, experiment: str) -> list:
        return [self.sweep(experiment)] if plan.experiments[experiment].theory_sweep else []

    def experiment_files(self, plan, experiment: str) -> list:
        """Every data file of the experiment: tasks, simulations, theories, variants,
        comparison, sweep."""
        files = [f for stage in STAGE_FILES for f in self.run_files(plan, experiment, stage)]
        files += self.variant_files(plan, experiment)
        return files + self.compare_files(plan, experiment) + self.sweep_files(plan, experiment)

    def figure_files(self, plan) -> list:
        return [self.figure(name, fmt) for name in plan.experiments for fmt in FIGURE_FORMATS]

    def result_files(self, plan) -> list:
        """Every data file of the plan, once each, in experiment order (no figures)."""
        files = [f for name in plan.experiments for f in self.experiment_files(plan, name)]
        return list(dict.fromkeys(files))

    def claim_inputs(self, plan) -> dict:
        """{experiment: {"sims", "theories", "sweeps": [files]}} that the plan's claims read:
        every run of an experiment in the source its claims test (a claim picks its runs by
        their parameters), its sweep where a claim reads a sweep."""
        from tsmeta.claims.spec import READS_RUNS, ClaimTest

        wanted: dict[str, set] = {}
        for name, claim in plan.claims.items():
            if name in plan.claims_left_out:
                continue
            test = ClaimTest.from_dict(claim["test"])
            part = {"sim": "sims", "theory": "theories"}[test.source]
            for exp in claim["experiments"]:
                wanted.setdefault(exp, set()).add(part if test.kind in READS_RUNS else "sweeps")
        files = {
            "sims": lambda exp: self.run_files(plan, exp, "simulate"),
            "theories": lambda exp: self.run_files(plan, exp, "theory"),
            "sweeps": lambda exp: self.sweep_files(plan, exp),
        }
        return {
            exp: {part: (get(exp) if part in parts else []) for part, get in files.items()}
            for exp, parts in wanted.items()
        }

    def claim_files(self, plan) -> list:
        """The files the claims rule reads, once each."""
        inputs = self.claim_inputs(plan).values()
        return list(dict.fromkeys(f for files in inputs for group in files.values() for f in group))

    def claims_files(self, plan) -> list:
        """results/claims.nc and claims.md where the plan has claims."""
        return [self.claims("nc"), self.claims("md")] if plan.claims else []
