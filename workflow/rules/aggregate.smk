rule aggregate:
    input:
        train=cell_outputs("train/metrics.json"),
        probe=cell_outputs("probe/metrics.json"),
    output:
        md=f"{R}/tables/summary.md",
        csv=report(f"{R}/tables/summary.csv", caption="../report/summary.rst", category="Tables"),
    params:
        rows=aggregate_rows(),
    log:
        f"{R}/logs/aggregate.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/aggregate.py"
