"""`aggregate(rows, outputs)`: read every cell, compare each with its reference, write the
planned tables and figures. What the Snakemake rule `aggregate` calls."""
from __future__ import annotations

import logging

from .collect import collect
from .compare import compare_all
from .figures import FIGURES
from .outputs import OUTPUTS
from .tables import TABLES

log = logging.getLogger("contrastlab.aggregate")


def aggregate(rows: list[dict], outputs: dict[str, str], baseline: str | None = None, n_boot: int = 10000,
              seed: int = 0) -> None:
    """rows: one per cell x seed (see `collect`); outputs: {key: path} as made by
    `outputs.output_paths` (`<table>_md|csv|html`, `<figure>`); keys not there are skipped."""
    study = collect(rows, baseline)
    log.info("%d cells, %d runs; baseline %s", len(study.cells), len(study.runs), study.baseline)
    comp = compare_all(study, n_boot=n_boot, seed=seed)
    for o in OUTPUTS:
        if o.kind == "table" and any(f"{o.name}_{f}" in outputs for f in ("md", "csv", "html")):
            TABLES[o.name](study, comp).write(md=outputs.get(f"{o.name}_md"), csv=outputs.get(f"{o.name}_csv"),
                                               html_path=outputs.get(f"{o.name}_html"))
            log.info("table %s written", o.name)
        elif o.kind == "figure" and o.name in outputs:
            FIGURES[o.name](study, comp, outputs[o.name])
            log.info("figure %s written", o.name)
