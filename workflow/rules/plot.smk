# After probe, so a cell's CPU work is one chain (one job group on a cluster, docs/cluster.md);
# the t-SNE's title quotes the probe's accuracies.
rule plot:
    input:
        **layout.stage_files(R, "embed"),
        history=layout.stage_files(R, "train")["history"],
        epochs=layout.stage_files(R, "train")["epochs"],
        probe=layout.stage_files(R, "probe")["metrics"],
    output:
        tsne=report(layout.stage_files(R, "plot")["tsne"], caption="../report/tsne.rst", category="Cells",
                    subcategory="{cell} seed {seed}", labels={"figure": "t-SNE"}),
        tsne_xy=layout.stage_files(R, "plot")["tsne_xy"],
        curves=report(layout.stage_files(R, "plot")["curves"], caption="../report/curves.rst", category="Cells",
                      subcategory="{cell} seed {seed}", labels={"figure": "curves"}),
    params:
        perplexity=PLAN.study.probe.tsne_perplexity,
        attempts=attempts_of("plot"),
        code=script_code("plot"),
    threads: 1
    log:
        layout.log_file(R, "plot"),
    benchmark:
        layout.benchmark_file(R, "plot")
    conda:
        "../../environment.yml"
    script:
        "../scripts/plot.py"
