rule plot:
    input:
        embeddings=f"{CELL_DIR}/embed/embeddings.npz",
        history=f"{CELL_DIR}/train/history.csv",
    output:
        tsne=report(f"{CELL_DIR}/plots/tsne.png", caption="../report/tsne.rst", category="Cells",
                    subcategory="{cell} seed {seed}", labels={"figure": "t-SNE"}),
        tsne_xy=f"{CELL_DIR}/plots/tsne.npz",
        curves=report(f"{CELL_DIR}/plots/curves.png", caption="../report/curves.rst", category="Cells",
                      subcategory="{cell} seed {seed}", labels={"figure": "curves"}),
    params:
        perplexity=config["probe"]["tsne_perplexity"],
        code=stage_code("plot"),
    threads: 1
    log:
        f"{R}/logs/plot/{{cell}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/plot/{{cell}}/seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/plot.py"
