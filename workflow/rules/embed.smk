rule embed:
    input:
        prepared=prepared_of_cell,
        weights=f"{CELL_DIR}/train/weights.safetensors",
    output:
        f"{CELL_DIR}/embed/embeddings.npz",
    params:
        cell=cell_config,
        split=config["probe"]["split"],
        layers=config["probe"]["layers"],
        max_samples=config["probe"]["max_samples"],
        code=stage_code("embed"),
    threads: config["runtime"]["threads"]
    resources:
        gpu=gpus_of_cell,
        mem_mb=config["runtime"]["mem_mb"],
    log:
        f"{R}/logs/embed/{{cell}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/embed/{{cell}}/seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/embed.py"
