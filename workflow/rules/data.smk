rule prepare:
    output:
        directory(f"{R}/prepared/{{prep}}"),
    params:
        data=config["data"],
        model=prep_model,
        code=stage_code("prepare"),
    log:
        f"{R}/logs/prepare/{{prep}}.log",
    benchmark:
        f"{R}/benchmarks/prepare/{{prep}}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/prepare.py"
