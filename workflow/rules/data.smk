rule prepare:
    output:
        directory(layout.prepared_dir(R)),
    params:
        prep=prep_params,
        attempts=attempts_of("prepare"),
        code=script_code("prepare"),
    log:
        f"{R}/logs/prepare/{{prep}}.log",
    benchmark:
        f"{R}/benchmarks/prepare/{{prep}}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/prepare.py"
