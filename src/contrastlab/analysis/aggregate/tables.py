"""The study's tables, as in the reference README: one row per cell, the baseline row first.

Each table is a `Table`: a title, a note saying what the numbers are, the formatted frame (for
Markdown/HTML: mean ± std strings, Δ with its interval and ✱) and the numeric frame (for CSV:
<metric>_mean, <metric>_std, delta, delta_lo, delta_hi, p, p_holm, ...). Tables key off the
cell's family and its loss params / sweep values, so a new sweep value adds a row, not code.
Every comparison table shows each cell's trainable parameters, its loss as a formula and its
training cost (encoder passes per step, estimated FLOPs, measured device-seconds), flags a
collapsed cell (⚠) and warns when its cells ran on different devices or library versions.
This module holds the machinery and the tables of every study; a family's own tables are in
its package (contrastlab.objectives.families.<family>.report).
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from contrastlab.plan.cost import FORMULA
from contrastlab.operations.io import atomic_path, write_text
from contrastlab.analysis.stats import format_mean_std
from contrastlab.analysis.aggregate.collect import ENVIRONMENT, PROBE_METRICS, TEST_METRICS, Study

SIG = "✱"
COLLAPSED = "⚠"
LABELS = {"accuracy": "accuracy", "val_accuracy": "val acc.", "roc_auc": "ROC-AUC", "macro_f1": "macro-F1", "svm_acc": "SVM acc.",
          "knn1_acc": "1-NN acc.", "kmeans_ari": "ARI", "kmeans_nmi": "NMI", "silhouette": "silhouette",
          "alignment": "alignment ↓", "uniformity": "uniformity ↓", "intra_cos": "intra-class cos",
          "inter_cos": "inter-class cos", "train_time_s": "train time (s)", "step_time_s": "step time (s)",
          "step_time_ratio": "step-time ratio", "peak_memory_mb": "peak memory (MB)",
          "memory_ratio": "memory ratio"}
COST_METRICS = ["train_forward_passes", "train_flops", "train_time_s"]  # every comparison table's (contrastlab.plan.cost)
DIGITS = {"train_time_s": 1, "step_time_s": 3, "step_time_ratio": 2, "peak_memory_mb": 0, "memory_ratio": 2}
LOWER_IS_BETTER = {"alignment", "uniformity", "inter_cos"}
DELTA_HEAD = "Δ accuracy [95% CI]"
COST_NOTE = (f"Cost per cell: passes/step = encoder forward passes over each example of an optimizer step; "
             f"{FORMULA} (an estimate); device-s = measured seconds of the optimizer steps.")
CSS = ("body{font-family:sans-serif;font-size:13px} p{max-width:60em} table{border-collapse:collapse} "
       "th,td{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap} "
       "th:first-child,td:first-child{text-align:left}")


@dataclass
class Table:
    title: str
    note: str
    shown: pd.DataFrame  # formatted strings, for reading
    numeric: pd.DataFrame  # numbers, for analysis
    preface: list[str] = field(default_factory=list)  # Markdown lines before the table (the verdict)

    def markdown(self) -> str:
        body = self.shown.to_markdown(index=False, disable_numparse=True) if len(self.shown) else "_(empty)_"
        preface = "\n".join(self.preface) + "\n\n" if self.preface else ""
        return f"# {self.title}\n\n{preface}{self.note}\n\n{body}\n"

    def html(self) -> str:
        """A standalone page (the report embeds it): title, note, the table; **x** becomes bold."""
        body = self.shown.to_html(index=False, escape=True, na_rep="", border=0) if len(self.shown) else ""
        body = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", body)
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body>\n<h3>{html.escape(self.title)}</h3>\n"
                + "".join(f"<p>{_inline(line.lstrip('- '))}</p>\n" for line in self.preface if line)
                + f"<p>{html.escape(self.note)}</p>\n{body}\n</body></html>\n")

    def write(self, md=None, csv=None, html_path=None) -> None:
        for path, text in ((md, self.markdown), (html_path, self.html)):
            if path:
                write_text(path, text())
        if csv:
            with atomic_path(csv) as tmp:
                self.numeric.to_csv(tmp, index=False)

    def save(self, paths: dict[str, str]) -> None:
        """Write to {format: path} (a family builder's `paths`, contrastlab.plan.contract)."""
        self.write(md=paths.get("md"), csv=paths.get("csv"), html_path=paths.get("html"))


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


# --- numbers ---------------------------------------------------------------------------------------
def cell_stats(study: Study, cells: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per cell: seeds, <m>_mean and <m>_std (sample std over seeds; NaN when missing)."""
    out = []
    for cell in cells:
        g = study.runs[study.runs["cell"] == cell]
        row = {"cell": cell, "family": study.cells[cell].family, "seeds": len(g)}
        for m in metrics:
            v = pd.to_numeric(g[m], errors="coerce").dropna() if m in g else pd.Series(dtype=float)
            row[f"{m}_mean"] = float(v.mean()) if len(v) else np.nan
            row[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else (0.0 if len(v) else np.nan)
        out.append(row)
    return pd.DataFrame(out)


def ratio_to(study: Study, cells: list[str], metric: str, ref: str) -> pd.DataFrame:
    """Per cell: mean and std over seeds of metric(cell, seed) / metric(ref, same seed)."""
    runs = study.runs.set_index(["cell", "seed"])
    out = []
    for cell in cells:
        r = [runs.loc[(cell, s), metric] / runs.loc[(ref, s), metric] for s in study.seeds(cell)
             if (ref, s) in runs.index and metric in runs and runs.loc[(ref, s), metric]]
        r = np.asarray(r, dtype=float)
        out.append({"cell": cell, f"{metric}_ratio_mean": r.mean() if len(r) else np.nan,
                    f"{metric}_ratio_std": r.std(ddof=1) if len(r) > 1 else (0.0 if len(r) else np.nan)})
    return pd.DataFrame(out)


def param_value(study: Study, cell: str, key: str):
    """A cell's value of a loss param or swept key (`model.max_len` may be asked as `max_len`)."""
    info = study.cells[cell]
    for k, v in info.sweep.items():
        if k == key or k.rpartition(".")[2] == key:
            return v
    return info.params.get(key)


def fmt_param(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (list, tuple)):
        return ",".join(fmt_param(x) for x in v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def param_keys(study: Study, cells: list[str], wanted: list[str], with_sweep: bool = True) -> list[str]:
    """The wanted params that some of these cells have, then (with_sweep) every other swept key."""
    keys = [k for k in wanted if any(param_value(study, c, k) is not None for c in cells)]
    for c in cells if with_sweep else []:
        for k in study.cells[c].sweep:
            short = k.rpartition(".")[2]
            if short not in keys:
                keys.append(short)
    return keys


# --- formatting ------------------------------------------------------------------------------------
def fmt_ms(mean, std, n, digits=4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return format_mean_std(mean, None if std is None or np.isnan(std) else std, digits=digits, n=n)


def fmt_delta(d: pd.Series, digits: int = 4) -> str:
    """"+0.0123 [+0.0040, +0.0200] ✱" (✱: real after Holm's adjustment); "reference" for the reference."""
    if pd.isna(d.get("diff")):
        return "reference" if d.get("cell") == d.get("reference") else "–"
    flag = f" {SIG}" if d["significant"] else ""
    return f"{d['diff']:+.{digits}f} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]{flag}"


def fmt_p(p) -> str:
    if p is None or pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_count(n) -> str:
    if n is None or pd.isna(n):
        return ""
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(int(n))


def fmt_flops(n) -> str:
    if n is None or pd.isna(n):
        return "–"
    return next(f"{n / 10 ** e:.2f} {p}FLOP" for e, p in ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (0, ""))
                if n >= 10 ** e or e == 0)


def cell_label(study: Study, cell: str) -> str:
    return f"{cell} {COLLAPSED}" if study.collapsed(cell) else cell


def delta_note(study: Study, cells: list[str], comp: pd.DataFrame) -> str:
    seeds = sorted({len(study.seeds(c)) for c in cells})
    n_seeds = f"{seeds[0]} seed{'s' if seeds[0] > 1 else ''}" if len(seeds) == 1 else "the seeds in column `seeds`"
    n_test = comp.loc[comp["cell"].isin(cells), "n_test"].dropna()
    n_test = f" on the same {int(n_test.max())} test examples" if len(n_test) else ""
    refs = sorted(set(comp.loc[comp["cell"].isin(cells) & comp["diff"].notna(), "reference"]))
    vs = study.baseline if refs in ([], [study.baseline]) else "its reference (column `vs`)"
    spread = ("One seed per cell: no ± std; the interval adds the seed variance of analysis.seed_sd or of the "
              "study's multi-seed comparisons where there is one, else it covers only the test-set noise and the "
              "verdict is provisional." if seeds == [1] else f"Mean ± std over {n_seeds}.")
    note = (f"{spread} Δ = cell − {vs} test accuracy, with a 95% t interval{n_test} (test examples paired, "
            f"seeds a random effect); {SIG} = better or worse: its p-value, Holm-adjusted over the comparisons of "
            f"non-degenerate cells and references (column p (Holm)), is below 0.05 and the seed variance is "
            f"measured; no mark = equivalent, undecided or provisional (the headline's verdict says which). "
            f"Per-seed scores: figure seed_scores.")
    return " ".join(filter(None, [note, collapse_note(study, cells), environment_warning(study, cells)]))


def collapse_note(study: Study, cells: list[str]) -> str:
    """What the ⚠ of a table's collapsed cells means, with each one's reason ("" when none is)."""
    flagged = [c for c in cells if study.collapsed(c)]
    if not flagged:
        return ""
    return (f"{COLLAPSED} = degenerate (near one predicted class, a predicted class mix far from the true one, "
            "accuracy not above chance, or a cross-entropy with no downward trend); a degenerate reference's "
            "comparisons are outside Holm's family and get no " + SIG + ": "
            + "; ".join(f"{c}: {study.collapsed(c)}" for c in flagged) + ".")


def environment_warning(study: Study, cells: list[str]) -> str:
    """A warning when the cells of a table ran on different devices, precisions or library versions."""
    runs = study.runs[study.runs["cell"].isin(cells)]
    differ = {k: sorted(map(str, runs[k].dropna().unique())) for k in ENVIRONMENT if k in runs}
    differ = {k: v for k, v in differ.items() if len(v) > 1}
    if not differ:
        return ""
    return ("WARNING: these cells ran on different " + "; ".join(f"{k} ({', '.join(v)})" for k, v in differ.items())
            + ": their times differ for that reason too, and their accuracies may.")


def _metric_columns(stats: pd.DataFrame, metrics: list[str], digits: int = 4) -> dict[str, list[str]]:
    return {LABELS.get(m, m): [fmt_ms(r[f"{m}_mean"], r[f"{m}_std"], r["seeds"], DIGITS.get(m, digits))
                               for _, r in stats.iterrows()] for m in metrics if f"{m}_mean" in stats}


def comparison_table(study: Study, comp: pd.DataFrame, cells: list[str], metrics: list[str], params: list[str],
                     title: str, note: str = "", extra: pd.DataFrame | None = None,
                     extra_metrics: list[str] = (), with_sweep: bool = True, with_family: bool = False) -> Table:
    """Rows: the baseline, then `cells`; columns: cell, params (`params` that the cells have, and
    their other swept keys if with_sweep), metrics (mean ± std), Δ accuracy, p.
    extra: more numeric columns per cell (<m>_mean/<m>_std for m in extra_metrics)."""
    own = {study.cells[x].family for x in cells}  # a reference of another family shows only its swept values
    cells = study.ordered(cells)
    stats = cell_stats(study, cells, list(dict.fromkeys([*metrics, "trainable_params", *COST_METRICS])))
    if extra is not None:  # a column the table has already (a cost metric) is not taken twice
        stats = stats.merge(extra[[k for k in extra if k == "cell" or k not in stats]], on="cell", how="left")
    c = comp.set_index("cell").loc[cells].reset_index()
    keys = param_keys(study, [x for x in cells if x != study.baseline], params, with_sweep)
    pvals = {k: [fmt_param(param_value(study, x, k)) if study.cells[x].family in own or
                 k in study.cells[x].sweep else "" for x in cells] for k in keys}
    shown = pd.DataFrame({"cell": [cell_label(study, x) for x in cells],
                          **({"family": stats["family"].to_numpy()} if with_family else {}), **pvals})
    shown["loss"] = [study.cells[x].form for x in cells]
    if (c["reference"] != study.baseline).any():
        shown["vs"] = [r if r != x else "" for x, r in zip(c["cell"], c["reference"])]
    shown["seeds"] = stats["seeds"].to_numpy()
    shown["trainable"] = [fmt_count(v) for v in stats["trainable_params_mean"]]
    for name, col in _metric_columns(stats, [*metrics, *extra_metrics]).items():
        shown[name] = col
    shown["passes/step"] = [fmt_param(v if pd.isna(v) else int(v)) for v in stats["train_forward_passes_mean"]]
    shown["train FLOPs"] = [fmt_flops(v) for v in stats["train_flops_mean"]]
    shown["device-s"] = [fmt_ms(r["train_time_s_mean"], r["train_time_s_std"], r["seeds"], 1) for _, r in stats.iterrows()]
    shown[DELTA_HEAD] = [fmt_delta(r) for _, r in c.iterrows()]
    shown["p (Holm)"] = [fmt_p(p) for p in c["p_holm"]]
    numeric = stats.rename(columns={"train_time_s_mean": "train_device_seconds_mean",
                                    "train_time_s_std": "train_device_seconds_std"})
    for k, v in pvals.items():
        numeric.insert(2, k, v)
    numeric.insert(2, "reference", c["reference"].to_numpy())
    numeric.insert(3, "loss", [study.cells[x].form for x in cells])
    numeric = numeric.assign(delta=c["diff"].to_numpy(), delta_lo=c["lo"].to_numpy(), delta_hi=c["hi"].to_numpy(),
                             se=c["se"].to_numpy(), p=c["p"].to_numpy(), p_holm=c["p_holm"].to_numpy(),
                             mcnemar_p=c["mcnemar_p"].to_numpy(), mdd=c["mdd"].to_numpy(),
                             holm_level=c["holm_level"].to_numpy(), seed_sd=c["seed_sd"].to_numpy(),
                             seed_sd_from=c["seed_sd_from"].to_numpy(), aso_eps_min=c["aso_eps_min"].to_numpy(),
                             seeds_needed=c["seeds_needed"].to_numpy(), n_test=c["n_test"].to_numpy(),
                             significant=c["significant"].to_numpy(), verdict=c["verdict"].to_numpy(),
                             collapsed=c["collapsed"].to_numpy())
    note = " ".join(filter(None, [delta_note(study, cells, comp), note, COST_NOTE]))
    return Table(title, note, shown, numeric)


# --- the tables ------------------------------------------------------------------------------------
def headline(study: Study, comp: pd.DataFrame) -> Table:
    from contrastlab.analysis.aggregate.verdict import verdict_lines

    t = comparison_table(study, comp, list(study.cells), TEST_METRICS + ["val_accuracy"], [],
                         "Headline: test metrics of every cell",
                         "Every cell of the grid in config order; its parameters are in the family tables. val "
                         "acc.: validation accuracy of the tested weights (what train.select chose; never test).",
                         with_sweep=False, with_family=True)
    margin = study.meta.get("equivalence_margin", 0.01)
    t.preface = ["**Verdict**", ""] + [f"- {line}" for line in verdict_lines(study, comp, margin)]
    return t


def representation(study: Study, comp: pd.DataFrame) -> Table:
    """Probes of the final [CLS] on the probe split; bold = best in its column (no interval: the
    probes have no per-example pairing, compare the ± std over seeds)."""
    cells = study.ordered()
    layer_metrics = sorted({c for c in study.runs.columns if c.startswith("layer") and "_" in c})
    stats = cell_stats(study, cells, PROBE_METRICS + layer_metrics)
    shown = pd.DataFrame({"cell": [cell_label(study, c) for c in cells], "family": stats["family"],
                          "seeds": stats["seeds"]})
    for m in PROBE_METRICS:
        if f"{m}_mean" not in stats or stats[f"{m}_mean"].isna().all():
            continue
        col = _metric_columns(stats, [m])[LABELS[m]]
        means = stats[f"{m}_mean"].round(4)
        best = means.min() if m in LOWER_IS_BETTER else means.max()
        top = (means == best).to_numpy() if (means != best).any() else np.zeros(len(means), bool)  # no bold on a tie
        shown[LABELS[m]] = [f"**{s}**" if t else s for t, s in zip(top, col)]
    seeds = sorted(set(stats["seeds"]))
    over = ("One seed per cell (no ± std):" if seeds == [1] else
            f"Mean ± std over {seeds[0] if len(seeds) == 1 else 'the'} seeds of")
    note = (f"{over} probes of the final-layer [CLS] "
            "on the probe split: linear-SVM and 1-NN accuracy (k-fold CV, standardised features), k-means "
            "ARI/NMI (k = number of classes), silhouette, alignment and uniformity (Wang & Isola; lower is "
            "better, marked ↓). Bold = best in its column; these probes are not paired per example, so "
            "a difference smaller than the ± std is noise. Extra layers (layer<l>_*) are in the CSV.")
    note = " ".join(filter(None, [note, collapse_note(study, cells), environment_warning(study, cells)]))
    return Table("Representation of the final [CLS]: probes", note, shown, stats)
