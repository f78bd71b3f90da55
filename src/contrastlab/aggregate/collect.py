"""Read every cell's results into one `Study`: metrics per run, and on demand its predictions,
training history and t-SNE map.

A run is one cell x seed, in `<dir>` = results/cells/<cell>/seed<seed>/ with train/metrics.json,
train/predictions.csv, train/history.csv, train/config.json, probe/metrics.json, plots/tsne.npz.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("contrastlab.aggregate")

TEST_METRICS = ["accuracy", "roc_auc", "macro_f1"]
PROBE_METRICS = ["svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi", "silhouette", "alignment", "uniformity",
                 "intra_cos", "inter_cos"]
COST_METRICS = ["train_time_s", "step_time_s", "peak_memory_mb", "steps"]


@dataclass
class CellInfo:
    name: str
    experiment: str
    family: str
    reference: str  # the cell this one is compared with (itself for the baseline)
    sweep: dict  # the swept values that name the cell
    params: dict  # the family's loss params, defaults filled in


@dataclass
class Study:
    runs: pd.DataFrame  # one row per cell x seed: cell, seed, family, every metric
    cells: dict[str, CellInfo]  # grid order
    baseline: str  # the global baseline cell
    dirs: dict[tuple[str, int], Path] = field(default_factory=dict)

    def seeds(self, cell: str) -> list[int]:
        return sorted(self.runs.loc[self.runs["cell"] == cell, "seed"].astype(int))

    def of_family(self, family: str) -> list[str]:
        return [c for c, i in self.cells.items() if i.family == family]

    def ordered(self, cells: list[str] | None = None) -> list[str]:
        """Cells in grid order with the baseline first, then the other references of `cells`
        (e.g. the LoRA baseline of the token cells) before the cells compared with them."""
        cells = list(self.cells) if cells is None else cells
        refs = [self.cells[c].reference for c in cells]
        return list(dict.fromkeys([self.baseline, *refs, *cells]))

    def correct(self, cell: str) -> pd.DataFrame:
        """[seeds x test examples] bool: column = the test split's `index`, row = seed."""
        cols = {}
        for s in self.seeds(cell):
            p = pd.read_csv(self.dirs[(cell, s)] / "train" / "predictions.csv")
            cols[s] = p.set_index("index")["correct"].astype(bool)
        return pd.DataFrame(cols).T.sort_index(axis=1)

    def history(self, cell: str, seed: int | None = None) -> pd.DataFrame:
        seed = self.seeds(cell)[0] if seed is None else seed
        return pd.read_csv(self.dirs[(cell, seed)] / "train" / "history.csv")

    def tsne(self, cell: str, seed: int | None = None) -> dict | None:
        seed = self.seeds(cell)[0] if seed is None else seed
        path = self.dirs[(cell, seed)] / "plots" / "tsne.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def resolve_params(family: str, loss: dict) -> dict:
    """The family's Params with defaults filled in; the raw mapping if the family cannot be parsed."""
    try:
        from dataclasses import asdict

        from ..objectives import parse_params
        return asdict(parse_params(family, loss))
    except (ImportError, ValueError, TypeError) as e:  # an unknown or unfinished family: show what was set
        log.warning("params of family %s not resolved (%s); using the config as written", family, e)
        return dict(loss or {})


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def collect(rows: list[dict], baseline: str | None = None) -> Study:
    """rows: one per run with cell, seed, experiment, family, dir, and optionally reference (the
    cell it is compared with; default: the baseline), sweep, and params (the family's loss params
    with defaults; default: resolved from train/config.json). baseline: the baseline cell
    (default: the row that is its own reference, else the first cell)."""
    records, cells, dirs = [], {}, {}
    if baseline is None:  # the cell that is its own reference, else the first
        baseline = next((r["cell"] for r in rows if r.get("reference") == r["cell"]), rows[0]["cell"])
    for r in rows:
        d = Path(r["dir"])
        rec = {"cell": r["cell"], "seed": int(r["seed"]), "experiment": r.get("experiment", r["cell"]),
               "family": r["family"]}
        for part in ("train", "probe"):
            rec.update({k: v for k, v in _read_json(d / part / "metrics.json").items() if k not in rec})
        records.append(rec)
        dirs[(r["cell"], int(r["seed"]))] = d
        if r["cell"] not in cells:
            params = r.get("params")
            if params is None:
                params = resolve_params(r["family"], _read_json(d / "train" / "config.json").get("loss", {}))
            cells[r["cell"]] = CellInfo(r["cell"], rec["experiment"], r["family"], r.get("reference") or baseline,
                                        dict(r.get("sweep") or {}), dict(params))
    if baseline not in cells:
        raise ValueError(f"baseline cell {baseline!r} has no results among the {len(cells)} cells")
    for info in cells.values():
        if info.reference not in cells:
            raise ValueError(f"cell {info.name!r} is compared with {info.reference!r}, which has no results")
    return Study(pd.DataFrame.from_records(records), cells, baseline, dirs)
