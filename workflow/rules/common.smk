# Helpers shared by the rules: every run and experiment comes from PLAN (tsmeta.config).


wildcard_constraints:
    run="[^/]+",
    experiment="[^/]+",


def run_params(wildcards):
    return PLAN.runs[wildcards.run].to_dict()


def experiment_files(kind):
    """Per-run files of an experiment: sim, theory or theory_nofv (if its figure needs them)."""
    stage = {"sim": "simulate", "theory": "theory", "theory_nofv": "theory"}[kind]

    def inputs(wildcards):
        exp = PLAN.experiments[wildcards.experiment]
        if stage not in exp.stages:
            return []
        if kind == "theory_nofv" and exp.figure.get("kind") != "finite_data":
            return []
        return [f"{RESULTS}/runs/{name}/{kind}.nc" for name in exp.runs]

    return inputs


def compare_file(wildcards):
    exp = PLAN.experiments[wildcards.experiment]
    if {"simulate", "theory"} <= set(exp.stages) and exp.runs:
        return [f"{RESULTS}/experiments/{wildcards.experiment}/compare.nc"]
    return []


def sweep_file(wildcards):
    if PLAN.experiments[wildcards.experiment].theory_sweep:
        return [f"{RESULTS}/experiments/{wildcards.experiment}/sweep.nc"]
    return []


def all_figures():
    return [
        f"{RESULTS}/figures/{name}.{ext}"
        for name in PLAN.experiments
        for ext in ("png", "pdf")
    ]
