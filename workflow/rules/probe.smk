rule probe:
    input:
        **layout.stage_files(R, "embed"),
    output:
        **layout.stage_files(R, "probe"),
    params:
        folds=PLAN.study.probe.folds,
        seed=seed_of,
        attempts=attempts_of("probe"),
        run=tracked_run,
        code=script_code("probe"),
    threads: RUNTIME.threads
    log:
        layout.log_file(R, "probe"),
    benchmark:
        layout.benchmark_file(R, "probe")
    conda:
        "../../environment.yml"
    script:
        "../scripts/probe.py"
