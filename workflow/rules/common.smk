# Helpers shared by the rules: every run and experiment comes from PLAN (tsmeta.config).
from tsmeta.figure_kinds import KINDS, split_options


wildcard_constraints:
    run="[^/]+",
    experiment="[^/]+",
    variant="[a-z0-9]+",


def run_params(wildcards):
    return PLAN.runs[wildcards.run].to_dict()


def experiment_runs(wildcards, stage):
    exp = PLAN.experiments[wildcards.experiment]
    return exp.runs if stage in exp.stages else []


def sim_files(wildcards):
    return [
        f"{RESULTS}/runs/{r}/sim.nc" for r in experiment_runs(wildcards, "simulate")
    ]


def theory_files(wildcards):
    return [
        f"{RESULTS}/runs/{r}/theory.nc" for r in experiment_runs(wildcards, "theory")
    ]


def variant_files(wildcards):
    """runs/<run>/theory_<label>.nc of every theory variant of the experiment, label-major."""
    labels = PLAN.experiments[wildcards.experiment].theory_variants
    runs = experiment_runs(wildcards, "theory")
    return [f"{RESULTS}/runs/{r}/theory_{label}.nc" for label in labels for r in runs]


def variant_labels(wildcards):
    return list(PLAN.experiments[wildcards.experiment].theory_variants)


def compare_file(wildcards):
    exp = PLAN.experiments[wildcards.experiment]
    if {"simulate", "theory"} <= set(exp.stages) and exp.runs:
        return [f"{RESULTS}/experiments/{wildcards.experiment}/compare.nc"]
    return []


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
    if PLAN.experiments[wildcards.experiment].theory_sweep:
        return [f"{RESULTS}/experiments/{wildcards.experiment}/sweep.nc"]
    return []


def all_outputs():
    """Every file of every experiment (runs, comparisons, sweeps) and its figure."""
    from types import SimpleNamespace

    files = []
    for name, exp in PLAN.experiments.items():
        wildcards = SimpleNamespace(experiment=name)
        if exp.stages:
            files += [f"{RESULTS}/runs/{r}/tasks.nc" for r in exp.runs]
        files += sim_files(wildcards) + theory_files(wildcards)
        files += variant_files(wildcards) + compare_file(wildcards)
        files += sweep_file(wildcards)
    return list(dict.fromkeys(files)) + all_figures()


def all_figures():
    """Every figure's data file and its painting."""
    return [
        f"{RESULTS}/figures/{name}.{ext}"
        for name in PLAN.experiments
        for ext in ("nc", "png", "pdf")
    ]
