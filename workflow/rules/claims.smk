rule claims:
    """The paper's claims (config key `claims`) evaluated on the results of the experiments
    they read: every statistic with its uncertainty and runs (claims.nc), and the table
    (claims.md). The claims are params: changing one reruns only this rule."""
    input:
        claim_files,
    output:
        nc=PATHS.claims("nc"),
        md=PATHS.claims("md"),
    log:
        PATHS.log("claims", "claims"),
    conda:
        "../../envs/tsmeta.yaml"
    resources:
        runtime=PLAN.short_job_runtime,
    params:
        claims=lambda wildcards: PLAN.claims,
        inputs=lambda wildcards: PATHS.claim_inputs(PLAN),
        title=lambda wildcards: PLAN.results,
        left_out=lambda wildcards: PLAN.claims_left_out,
    script:
        "../scripts/claims.py"
