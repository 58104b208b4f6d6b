# Helpers shared by the rules: every run and experiment comes from PLAN (tsmeta.config),
# every file name from PATHS (tsmeta.paths, the layout `tsmeta check` reads too).
from tsmeta.paths import ResultPaths

PATHS = ResultPaths(RESULTS)


wildcard_constraints:
    run="[^/]+",
    experiment="[^/]+",
    variant="[a-z0-9]+",


def run_params(wildcards):
    return PLAN.runs[wildcards.run].to_dict()


def sim_files(wildcards):
    return PATHS.run_files(PLAN, wildcards.experiment, "simulate")


def theory_files(wildcards):
    return PATHS.run_files(PLAN, wildcards.experiment, "theory")


def variant_files(wildcards):
    """runs/<run>/theory_<label>.nc of every theory variant of the experiment, label-major."""
    return PATHS.variant_files(PLAN, wildcards.experiment)


def variant_labels(wildcards):
    return list(PLAN.experiments[wildcards.experiment].theory_variants)


def compare_file(wildcards):
    return PATHS.compare_files(PLAN, wildcards.experiment)


def compare_window(wildcards):
    """The first-stage window of the deviations (figure options of the experiment)."""
    figure = PLAN.experiments[wildcards.experiment].figure
    return {
        "level": figure.get("first_stage_level", 0.01),
        "alpha_end": figure.get("first_stage_alpha"),
    }


def sweep_file(wildcards):
    return PATHS.sweep_files(PLAN, wildcards.experiment)


def all_outputs():
    """Every file of every experiment (runs, comparisons, sweeps) and its figure."""
    return PATHS.result_files(PLAN) + all_figures()


def all_figures():
    return PATHS.figure_files(PLAN)
