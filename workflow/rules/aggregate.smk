def aggregate_rows():
    """What the aggregate script needs of each cell x seed (plain values: a params entry)."""
    return [
        {"cell": c.name, "seed": c.seed, "experiment": c.experiment, "family": c.family,
         "train": f"{R}/cells/{c.name}/seed{c.seed}/train/metrics.json",
         "probe": f"{R}/cells/{c.name}/seed{c.seed}/probe/metrics.json"}
        for c in CELLS
    ]


def aggregate_outputs():
    return [f"{R}/tables/summary.md", f"{R}/tables/summary.csv"]


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
    script:
        "../scripts/aggregate.py"
