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
        analysis=PLAN.study.analysis.model_dump(),
        attempts=attempts_of("aggregate"),
        code=code_hash(os.path.join(SCRIPTS, "aggregate.py"),
                       *(f"contrastlab.families.{f}.report" for f in PLAN.families)),
    log:
        f"{R}/logs/aggregate.log",
    benchmark:
        f"{R}/benchmarks/aggregate.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/aggregate.py"
