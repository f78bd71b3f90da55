"""Read every cell's results into one `Study`: metrics per run, and on demand its predictions,
training history, validation curve and t-SNE map.

A run is one cell x seed; the aggregate rule passes each run's file paths (contrastlab.plan.layout),
so nothing here knows a file name.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("contrastlab.analysis.aggregate")

TEST_METRICS = ["accuracy", "roc_auc", "macro_f1"]
PROBE_METRICS = ["svm_acc", "knn1_acc", "kmeans_ari", "kmeans_nmi", "silhouette", "alignment", "uniformity",
                 "intra_cos", "inter_cos"]
# Provenance that must agree between cells compared in one table (contrastlab.operations.provenance.run_record).
ENVIRONMENT = ["device_name", "precision", "torch", "transformers", "peft", "cuda"]


@dataclass
class CellInfo:
    name: str
    experiment: str
    family: str
    reference: str  # the cell this one is compared with (itself for the baseline)
    sweep: dict  # the swept values that name the cell
    params: dict  # the family's loss params, defaults filled in
    form: str = ""  # the loss as a formula ("CE + 0.2·SupCon")


@dataclass
class Study:
    runs: pd.DataFrame  # one row per cell x seed: cell, seed, family, every metric
    cells: dict[str, CellInfo]  # display order
    baseline: str  # the global baseline cell
    files: dict[tuple[str, int], dict] = field(default_factory=dict)  # (cell, seed) -> {name: path}
    meta: dict = field(default_factory=dict)  # what the landing page states: config, model, data
    tuning: list[dict] = field(default_factory=list)  # per tuned cell: its trials' scores (aggregate.tuning)

    def seeds(self, cell: str) -> list[int]:
        return sorted(self.runs.loc[self.runs["cell"] == cell, "seed"].astype(int))

    def of_family(self, family: str) -> list[str]:
        return [c for c, i in self.cells.items() if i.family == family]

    def ordered(self, cells: list[str] | None = None) -> list[str]:
        """Cells in display order with the baseline first, then the other references of `cells`
        (e.g. the LoRA baseline of the token cells) before the cells compared with them."""
        cells = list(self.cells) if cells is None else cells
        refs = [self.cells[c].reference for c in cells]
        return list(dict.fromkeys([self.baseline, *refs, *cells]))

    def collapsed(self, cell: str) -> str | None:
        """Why the cell is degenerate (contrastlab.analysis.metrics.collapse), or None: the first
        degenerate seed's reasons, and how many of its seeds are degenerate when it has several."""
        runs = self.runs.loc[self.runs["cell"] == cell].sort_values("seed")
        reasons = runs["collapse_reason"].dropna()
        if not len(reasons):
            return None
        first = f"seed {int(runs.loc[reasons.index[0], 'seed'])}: " if len(runs) > 1 else ""
        many = f"{len(reasons)} of {len(runs)} seeds degenerate; " if len(runs) > 1 else ""
        return many + first + reasons.iloc[0]

    def correct(self, cell: str) -> pd.DataFrame:
        """[seeds x test examples] bool: column = the test example's source row, row = seed."""
        cols = {}
        for s in self.seeds(cell):
            p = pd.read_csv(self.files[(cell, s)]["train_predictions"])
            cols[s] = p.set_index("row" if "row" in p else "index")["correct"].astype(bool)
        return pd.DataFrame(cols).T.sort_index(axis=1)

    def _csv(self, cell: str, seed: int | None, name: str) -> pd.DataFrame:
        seed = self.seeds(cell)[0] if seed is None else seed
        return pd.read_csv(self.files[(cell, seed)][name])

    def history(self, cell: str, seed: int | None = None) -> pd.DataFrame:
        return self._csv(cell, seed, "train_history")

    def epochs(self, cell: str, seed: int | None = None) -> pd.DataFrame:
        return self._csv(cell, seed, "train_epochs")

    def tsne(self, cell: str, seed: int | None = None) -> dict | None:
        seed = self.seeds(cell)[0] if seed is None else seed
        path = self.files[(cell, seed)].get("tsne_xy")
        if path is None or not Path(path).exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def _read_json(path) -> dict:
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else {}


def collect(runs: list[dict], baseline: str, order: list[str] | None = None, meta: dict | None = None) -> Study:
    """runs: one per cell x seed with cell, seed, experiment, family, reference, sweep, params, form
    (the loss as a formula, the family's Params.form()) and files ({"train_metrics": path, "train_predictions": ..., "probe_metrics": ...}). order: the
    cells' display order (default: as given)."""
    records, cells, files = [], {}, {}
    for r in runs:
        f = r["files"]
        rec = {"cell": r["cell"], "seed": int(r["seed"]), "experiment": r.get("experiment", r["cell"]),
               "family": r["family"]}
        train = _read_json(f.get("train_metrics"))
        rec.update({k: v for k, v in train.items() if k not in rec and not isinstance(v, (dict, list))})
        rec.update({k: v for k, v in _read_json(f.get("probe_metrics")).items() if k not in rec})
        rec["collapse_reason"] = (train.get("collapsed") or {}).get("reason")
        rec.update({k: (train.get("provenance") or {}).get(k) for k in ENVIRONMENT})
        records.append(rec)
        files[(r["cell"], int(r["seed"]))] = f
        if r["cell"] not in cells:
            cells[r["cell"]] = CellInfo(r["cell"], rec["experiment"], r["family"], r.get("reference") or baseline,
                                        dict(r.get("sweep") or {}), dict(r.get("params") or {}),
                                        r.get("form") or "")
    if order:
        cells = {c: cells[c] for c in order if c in cells} | cells
    if baseline not in cells:
        raise ValueError(f"baseline cell {baseline!r} has no results among the {len(cells)} cells")
    for info in cells.values():
        if info.reference not in cells:
            raise ValueError(f"cell {info.name!r} is compared with {info.reference!r}, which has no results")
    runs_df = pd.DataFrame.from_records(records)
    check_same_test_examples(runs_df, cells)
    return Study(runs_df, cells, baseline, files, meta or {})


def check_same_test_examples(runs: pd.DataFrame, cells: dict[str, CellInfo]) -> None:
    """Predictions are paired by source row: a cell and its reference must have been tested on the
    same examples (equal `test_examples` hashes, contrastlab.data.prepared.split_fingerprint), else the
    rows of one data file would be compared with the unrelated rows of another."""
    if "test_examples" not in runs:
        return
    hashes = runs.dropna(subset=["test_examples"]).groupby("cell")["test_examples"].agg(lambda h: sorted(set(h)))
    for info in cells.values():
        own, ref = hashes.get(info.name), hashes.get(info.reference)
        if own is not None and ref is not None and own != ref:
            raise ValueError(f"cell {info.name!r} and its reference {info.reference!r} were tested on different "
                             f"examples (test split {', '.join(own)} vs {', '.join(ref)}): their predictions cannot "
                             "be paired by row; compare cells prepared from the same data")
