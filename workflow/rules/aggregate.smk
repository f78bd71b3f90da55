# Aggregate: every cell x seed -> the study's tables (results/tables/<name>.md|csv|html) and
# figures (results/figures/<name>.png). Which ones depends on the families in the grid
# (contrastlab.aggregate.outputs); each is in the report with the caption ../report/<name>.rst.
from contrastlab.aggregate.outputs import code_hash


rule aggregate:
    input:
        metrics=cell_outputs("train/metrics.json"),
        predictions=cell_outputs("train/predictions.csv"),
        history=cell_outputs("train/history.csv"),
        config=cell_outputs("train/config.json"),
        probe=cell_outputs("probe/metrics.json"),
        tsne=[f"{r['dir']}/plots/tsne.npz" for r in aggregate_rows() if r["family"] == "token"],
    output:
        **aggregate_outputs(named=True),
    params:
        rows=aggregate_rows(),
        n_boot=10000,
        code=code_hash(),
    log:
        f"{R}/logs/aggregate.log",
    benchmark:
        f"{R}/benchmarks/aggregate.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/aggregate.py"
