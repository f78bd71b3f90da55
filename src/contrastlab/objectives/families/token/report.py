"""`token`'s report: the k x alpha table and the k x alpha grid of t-SNE maps."""
from __future__ import annotations

import pandas as pd

from contrastlab.analysis.aggregate.collect import Study
from contrastlab.analysis.aggregate.figures import placeholder
from contrastlab.analysis.aggregate.tables import COLLAPSED, SIG, Table, comparison_table, fmt_ms, fmt_param, param_keys, param_value
from contrastlab.analysis.plots import plot_tsne_grid


def token_k_alpha(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    """Markdown: a pivot, rows k (and any other swept key), columns alpha, entries test accuracy
    mean ± std with ✱ where its difference to the baseline is real. CSV: one row per cell."""
    long = comparison_table(study, comp, cells, ["accuracy"], ["k", "alpha"], "")
    num = long.numeric
    rows = [k for k in param_keys(study, cells, ["k", "alpha"]) if k != "alpha"]
    tok = num[num["cell"].isin(cells)].copy()
    tok["entry"] = [f"{fmt_ms(r['accuracy_mean'], r['accuracy_std'], r['seeds'])}{' ' + SIG if r['significant'] else ''}"
                    f"{' ' + COLLAPSED if r['collapsed'] else ''}"
                    for _, r in tok.iterrows()]
    alphas = list(dict.fromkeys(sorted(tok["alpha"], key=_num_key)))
    tok["_row"] = [" / ".join(str(r[k]) for k in rows) for _, r in tok.iterrows()]
    row_order = sorted(dict.fromkeys(tok["_row"]), key=lambda s: [_num_key(x) for x in s.split(" / ")])
    pivot = tok.pivot_table(index="_row", columns="alpha", values="entry", aggfunc="first").reindex(
        index=row_order, columns=alphas)
    shown = pivot.reset_index().rename(columns={"_row": " / ".join(rows) + " \\ α"})
    shown.columns = [str(c) if i == 0 else f"α = {c}" for i, c in enumerate(shown.columns)]
    shown = shown.fillna("")
    refs = "; ".join(f"{r['cell']}: {fmt_ms(r['accuracy_mean'], r['accuracy_std'], r['seeds'])}"
                     for _, r in num[~num["cell"].isin(cells)].iterrows())
    note = (f"Test accuracy, mean ± std over seeds, by k (rows) and contrastive weight α (columns). "
            f"Baseline and references: {refs}. "
            f"{SIG} = better or worse than the reference (see the headline); {COLLAPSED} = the cell is "
            f"degenerate (see the headline); the CSV has every cell's Δ, interval, p, trainable parameters and loss "
            f"(and the baseline as its first row).")
    Table("Token-level contrast: k x alpha", note, shown, num).save(paths)


def _num_key(x):
    try:
        return (0, float(x), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(x))


def tsne_k_alpha(study: Study, comp: pd.DataFrame, cells: list[str], paths: dict[str, str]) -> None:
    panels, names = {}, None
    for c in sorted(cells, key=lambda c: (float(param_value(study, c, "k") or 0),
                                          float(param_value(study, c, "alpha") or 0))):
        t = study.tsne(c)
        if t is None:
            continue
        names = [str(n) for n in t["label_names"]]
        panels[(f"k = {fmt_param(param_value(study, c, 'k'))}",
                f"α = {fmt_param(param_value(study, c, 'alpha'))}")] = (t["xy"], t["labels"])
    if not panels:
        return placeholder(paths["png"], "No t-SNE maps of token-family cells in this grid.")
    plot_tsne_grid(panels, names, paths["png"], title="t-SNE of the final [CLS] (probe split), token-level contrast")
