# Helpers shared by the rules: every run and experiment comes from PLAN (tsmeta.config).


wildcard_constraints:
    run="[^/]+",
    experiment="[^/]+",


def run_params(wildcards):
    return PLAN.runs[wildcards.run].to_dict()


def experiment_files(kind):
    def inputs(wildcards):
        names = PLAN.experiments[wildcards.experiment].runs
        return [f"{RESULTS}/runs/{name}/{kind}.nc" for name in names]

    return inputs


def all_figures():
    return [
        f"{RESULTS}/figures/{name}.{ext}"
        for name in PLAN.experiments
        for ext in ("png", "pdf")
    ]
