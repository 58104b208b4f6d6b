# Helpers shared by the rules: every run and experiment comes from PLAN (tsmeta.config),
# every file name from PATHS (tsmeta.paths, the layout `tsmeta check` reads too).
from tsmeta.figure_kinds import KINDS, split_options
from tsmeta.paths import ResultPaths

PATHS = ResultPaths(RESULTS)


wildcard_constraints:
    run="[^/]+",
    experiment="[^/]+",
    variant="[a-z0-9]+",
    segment="[0-9]+",


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
    """The first-stage window of the deviations (the experiment's `compare` key)."""
    return dict(PLAN.experiments[wildcards.experiment].compare)


def figure_options(wildcards, part):
    """The data or the paint options of the experiment's figure (figure_kinds): a paint
    option reruns only the figure job, a data option the figure_data job too."""
    data, paint = split_options(PLAN.experiments[wildcards.experiment].figure)
    return data if part == "data" else paint


def figure_caption(wildcards):
    """The report caption of the figure's kind, with its data options, as reStructuredText."""
    data, _ = split_options(PLAN.experiments[wildcards.experiment].figure)
    caption = KINDS[data["kind"]].caption
    return tsconfig.rst_text(f"{caption} Data options: {data}.")


def sweep_file(wildcards):
    return PATHS.sweep_files(PLAN, wildcards.experiment)


def all_outputs():
    """Every file of every experiment (runs, comparisons, sweeps), its figure, and the
    claims table where the config has claims."""
    return PATHS.result_files(PLAN) + all_figures() + PATHS.claims_files(PLAN)


def claim_files(wildcards):
    """The results the claims read (tsmeta.paths.ResultPaths.claim_inputs)."""
    return PATHS.claim_files(PLAN)


def all_figures():
    """Every figure's data file and its painting."""
    return PATHS.figure_files(PLAN)


def cost(wildcards):
    """The run's estimate (tsmeta.cost): memory, time, threads, segments."""
    return PLAN.costs[wildcards.run]


def previous_segment(wildcards):
    """The state the job starts from: the segment before it, none for the first."""
    last = int(wildcards.get("segment", cost(wildcards).segments))
    return [PATHS.segment(wildcards.run, last - 1)] if last > 1 else []
