# Aggregate: every cell x seed -> the study's tables (results/tables/<name>.md|csv|html) and
# figures (results/figures/<name>.png): those of every study and those its families add
# (contrastlab.aggregate.outputs); each is in the report with the caption ../report/<name>.rst.


rule aggregate:
    input:
        aggregate_inputs(),
    output:
        **aggregate_outputs(named=True),
    params:
        runs=aggregate_runs(),
        baseline=PLAN.baseline,
        n_boot=10000,
        attempts=attempts_of("aggregate"),
        code=aggregate_code(),
    log:
        layout.job_log(R, "aggregate"),
    benchmark:
        layout.job_benchmark(R, "aggregate")
    conda:
        "../../environment.yml"
    script:
        "../scripts/aggregate.py"
