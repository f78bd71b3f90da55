"""Which tables and figures a grid produces, and where: the rule's outputs, fixed at DAG build.

A table or figure that needs a family (the R-Drop cost table needs `rdrop` cells) is produced
only when the grid has cells of that family, so every declared output is a real result. The
file names are stable: `tables/<name>.md|csv|html`, `figures/<name>.png`.

Nothing heavy is imported here (the Snakefile imports this module to build the DAG).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Output:
    name: str  # file stem: tables/<name>.md, figures/<name>.png
    kind: str  # "table" or "figure"
    family: str | None  # produced only when the grid has cells of this family; None: always
    title: str


OUTPUTS = [
    Output("headline", "table", None, "Headline: test metrics of every cell"),
    Output("rdrop", "table", "rdrop", "R-Drop: one- vs two-stage, accuracy and cost"),
    Output("scl_views", "table", "scl", "Supervised contrastive loss: one view vs multi-view"),
    Output("token_k_alpha", "table", "token", "Token-level contrast: k x alpha"),
    Output("cluster", "table", "cluster", "Clustered token views: number of clusters"),
    Output("representation", "table", None, "Representation of the final [CLS]: probes"),
    Output("multilayer", "table", "multilayer", "Multi-layer contrast: layer sets x level"),
    Output("forest", "figure", None, "Difference to the baseline with its 95% interval"),
    Output("loss_curves", "figure", None, "Training loss by family"),
    Output("grad_norm", "figure", None, "Gradient norm by family"),
    Output("rdrop_cost", "figure", "rdrop", "R-Drop: one- vs two-stage cost"),
    Output("tsne_k_alpha", "figure", "token", "Token-level contrast: t-SNE of [CLS], k x alpha"),
    Output("multilayer_bars", "figure", "multilayer", "Multi-layer contrast: accuracy by layer set and level"),
]
TABLE_FORMATS = ("md", "csv", "html")


def planned(families) -> list[Output]:
    """The outputs of a grid whose cells have these families, in OUTPUTS order."""
    families = set(families)
    return [o for o in OUTPUTS if o.family is None or o.family in families]


def output_paths(results: str, families) -> dict[str, str]:
    """{key: path} of every planned output: `<name>_<fmt>` for tables, `<name>` for figures."""
    paths = {}
    for o in planned(families):
        if o.kind == "table":
            for fmt in TABLE_FORMATS:
                paths[f"{o.name}_{fmt}"] = f"{results}/tables/{o.name}.{fmt}"
        else:
            paths[o.name] = f"{results}/figures/{o.name}.png"
    return paths


def code_hash() -> str:
    """Hash of the code that makes the tables and figures (this package, stats.py, plots.py): a
    rule param, so that editing it reruns the aggregate (Snakemake does not look into imports)."""
    pkg = Path(__file__).resolve().parent
    files = sorted(pkg.glob("*.py")) + [pkg.parent / "stats.py", pkg.parent / "plots.py"]
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]
