# Aggregate: every cell x seed -> the study's tables (results/tables/<name>.md|csv|html) and
# figures (results/figures/<name>.png): those of every study and those its families add
# (contrastlab.analysis.aggregate.outputs, contrastlab.objectives.families.<family>.OUTPUTS), each in the report with
# its declared caption (contrastlab.plan.contract).


rule aggregate:
    input:
        aggregate_inputs(),
    output:
        **aggregate_outputs(named=True),
    params:
        runs=aggregate_runs(),
        baseline=PLAN.baseline,
        analysis=PLAN.study.analysis.model_dump(),
        attempts=attempts_of("aggregate"),
        report=aggregate_report(),
        tuning=aggregate_tuning(),
        sequential=sequential_schedule(),
        code=aggregate_code(),
    log:
        layout.job_log(R, "aggregate"),
    benchmark:
        layout.job_benchmark(R, "aggregate")
    conda:
        "../../environment.yml"
    script:
        "../scripts/aggregate.py"
