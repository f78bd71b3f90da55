rule probe:
    input:
        f"{CELL_DIR}/embed/embeddings.npz",
    output:
        f"{CELL_DIR}/probe/metrics.json",
    params:
        folds=config["probe"]["folds"],
        seed=seed_of,
        code=stage_code("probe"),
    threads: 1
    log:
        f"{R}/logs/probe/{{cell}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/probe/{{cell}}/seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/probe.py"
