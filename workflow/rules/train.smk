rule train:
    input:
        prepared=prepared_of_cell,
    output:
        metrics=f"{CELL_DIR}/train/metrics.json",
        weights=f"{CELL_DIR}/train/weights.safetensors",
        predictions=f"{CELL_DIR}/train/predictions.csv",
        history=f"{CELL_DIR}/train/history.csv",
        config=f"{CELL_DIR}/train/config.json",
    params:
        cell=cell_config,
        code=train_code,
    threads: config["runtime"]["threads"]
    resources:
        gpu=gpus_of_cell,
        mem_mb=config["runtime"]["mem_mb"],
        runtime=config["runtime"]["runtime_min"],
    log:
        f"{R}/logs/train/{{cell}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{cell}}/seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/train.py"
