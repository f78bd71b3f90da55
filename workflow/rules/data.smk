rule prepare:
    output:
        directory(layout.prepared_dir(R)),
    params:
        prep=prep_params,
        attempts=attempts_of("prepare"),
        code=script_code("prepare"),
    log:
        layout.job_log(R, "prepare", "{prep}"),
    benchmark:
        layout.job_benchmark(R, "prepare", "{prep}")
    conda:
        "../../environment.yml"
    script:
        "../scripts/prepare.py"
