"""Aggregate tables and figures from fake per-cell results with known differences: the baseline
row first, mean ± std over seeds, a real difference flagged and a null one not, the R-Drop
step-time ratio, the k x alpha shape, valid PNGs, outputs fixed by the grid's families."""
import json

import numpy as np
import pandas as pd
import pytest

from contrastlab.aggregate.outputs import output_paths, planned
from contrastlab.aggregate.run import aggregate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = [1, 2, 3]
N_TEST = 1000
BASE_ACC = {1: 0.80, 2: 0.81, 3: 0.79}
BASE_STEP = {1: 0.10, 2: 0.12, 3: 0.11}
RDROP_RATIO = {"rdrop_stages1": [1.4, 1.5, 1.6], "rdrop_stages2": [1.9, 2.0, 2.1]}
ALL_FAMILIES = ["baseline", "scl", "rdrop", "token", "cluster", "multilayer"]


def base_correct(seed):
    rng = np.random.default_rng(seed)
    c = np.zeros(N_TEST, bool)
    c[rng.permutation(N_TEST)[: int(BASE_ACC[seed] * N_TEST)]] = True
    return c


def better(seed):
    """The baseline's predictions with 80 of its errors fixed: +0.08 accuracy on the same examples."""
    c = base_correct(seed).copy()
    c[np.flatnonzero(~c)[:80]] = True
    return c


def same_accuracy(seed):
    """The baseline's predictions with 60 right->wrong and 60 wrong->right: Δ exactly 0."""
    c = base_correct(seed).copy()
    right, wrong = np.flatnonzero(c), np.flatnonzero(~c)
    c[right[:60]], c[wrong[:60]] = False, True
    return c


# cell -> (experiment, family, sweep, loss, correct(seed))
GRID = {
    "baseline": ("baseline", "baseline", {}, {}, base_correct),
    "scl_viewsone": ("scl", "scl", {"views": "one"}, {"views": "one"}, better),
    "scl_viewsmulti": ("scl", "scl", {"views": "multi"}, {"views": "multi"}, same_accuracy),
    "rdrop_stages1": ("rdrop", "rdrop", {"stages": 1}, {"stages": 1}, same_accuracy),
    "rdrop_stages2": ("rdrop", "rdrop", {"stages": 2}, {"stages": 2}, same_accuracy),
    **{f"token_k{k}_alpha{a}": ("token", "token", {"k": k, "alpha": a}, {"k": k, "alpha": a}, same_accuracy)
       for k in (30, 60, 90) for a in (0.2, 0.5)},
    **{f"cluster_n_clusters{n}": ("cluster", "cluster", {"n_clusters": n}, {"n_clusters": n}, same_accuracy)
       for n in (5, 10)},
    **{f"ml_layers{'-'.join(map(str, ls))}_level{lv}": ("ml", "multilayer", {"layers": ls, "level": lv},
                                                       {"layers": ls, "level": lv}, same_accuracy)
       for ls in ([0, 1, 2, 3], [8, 9, 10, 11]) for lv in ("token", "sentence")},
}


def write_run(d, cell, seed, family, loss, correct):
    rng = np.random.default_rng(seed)
    step = BASE_STEP[seed] * (RDROP_RATIO[cell][SEEDS.index(seed)] if cell in RDROP_RATIO else 1.0)
    (d / "train").mkdir(parents=True)
    (d / "probe").mkdir()
    (d / "plots").mkdir()
    (d / "train" / "metrics.json").write_text(json.dumps(
        {"accuracy": float(correct.mean()), "roc_auc": 0.9, "macro_f1": float(correct.mean()), "n_test": N_TEST,
         "steps": 40, "train_time_s": 40 * step, "step_time_s": step, "peak_memory_mb": 1000.0 + 10 * seed}))
    (d / "probe" / "metrics.json").write_text(json.dumps(
        {"svm_acc": 0.85 + 0.01 * seed, "knn1_acc": 0.8, "kmeans_ari": 0.5, "kmeans_nmi": 0.4, "silhouette": 0.1,
         "alignment": 0.5, "uniformity": -2.0, "intra_cos": 0.6, "inter_cos": 0.2, "layer0_svm_acc": 0.7}))
    label = rng.integers(0, 2, N_TEST)
    pred = np.where(correct, label, 1 - label)
    pd.DataFrame({"index": np.arange(N_TEST), "label": label, "pred": pred, "correct": correct.astype(int),
                  "prob_neg": 1.0 - pred, "prob_pos": pred.astype(float)}).to_csv(d / "train" / "predictions.csv",
                                                                                   index=False)
    steps = np.arange(1, 41)
    hist = {"step": steps, "epoch": 1, "loss": np.exp(-steps / 20) + 0.1, "grad_norm": 1 + rng.random(40),
            "lr": 1e-4, "time_s": step}
    hist.update({"loss_ce1": hist["loss"] / 2, "loss_ce2": hist["loss"] / 2} if family == "rdrop"
                else {"loss_ce": hist["loss"] * 0.8})
    pd.DataFrame(hist).to_csv(d / "train" / "history.csv", index=False)
    (d / "train" / "config.json").write_text(json.dumps({"cell": cell, "family": family, "seed": seed, "loss": loss}))
    np.savez(d / "plots" / "tsne.npz", xy=rng.normal(size=(60, 2)), labels=np.repeat([0, 1], 30),
             label_names=np.array(["neg", "pos"]))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    rows = []
    for cell, (experiment, family, sweep, loss, correct) in GRID.items():
        for seed in SEEDS:
            d = root / "cells" / cell / f"seed{seed}"
            write_run(d, cell, seed, family, loss, correct(seed))
            rows.append({"cell": cell, "seed": seed, "experiment": experiment, "family": family, "params": loss,
                         "reference": "baseline", "sweep": sweep, "dir": str(d)})
    outputs = output_paths(str(root), ALL_FAMILIES)
    aggregate(rows, outputs, n_boot=2000)
    return root, outputs


def md_rows(path):
    """The data rows of the first Markdown table in the file, as lists of cell strings."""
    lines = [l for l in path.read_text().splitlines() if l.startswith("|")]
    return [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]


def test_every_table_starts_with_the_baseline_row_and_says_what_its_numbers_are(results):
    root, _ = results
    for name in ("headline", "rdrop", "scl_views", "cluster", "representation", "multilayer", "token_k_alpha"):
        assert pd.read_csv(root / "tables" / f"{name}.csv")["cell"].iloc[0] == "baseline", name
        text = (root / "tables" / f"{name}.md").read_text()
        assert text.startswith("# ") and "mean ± std" in text.lower(), name
        if name != "token_k_alpha":  # a pivot: its rows are k values, the baseline is in its note
            assert md_rows(root / "tables" / f"{name}.md")[0][0] == "baseline", name


def test_mean_and_std_are_over_seeds(results):
    root, _ = results
    t = pd.read_csv(root / "tables" / "headline.csv").set_index("cell")
    accs = [BASE_ACC[s] for s in SEEDS]
    assert t.loc["baseline", "accuracy_mean"] == pytest.approx(np.mean(accs))
    assert t.loc["baseline", "accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert t.loc["baseline", "seeds"] == 3
    assert md_rows(root / "tables" / "headline.md")[0][3] == "0.8000 ± 0.0100"


def test_a_real_difference_is_flagged_and_a_null_one_is_not(results):
    root, _ = results
    t = pd.read_csv(root / "tables" / "headline.csv").set_index("cell")
    assert t.loc["scl_viewsone", "delta"] == pytest.approx(0.08)
    assert t.loc["scl_viewsone", "delta_lo"] > 0 and t.loc["scl_viewsone", "significant"]
    assert t.loc["scl_viewsmulti", "delta"] == pytest.approx(0.0)
    assert t.loc["scl_viewsmulti", "delta_lo"] < 0 < t.loc["scl_viewsmulti", "delta_hi"]
    assert not t.loc["scl_viewsmulti", "significant"]
    assert t.loc["scl_viewsone", "mcnemar_p"] < 0.001 and t.loc["scl_viewsmulti", "mcnemar_p"] > 0.5
    rows = {r[0]: r for r in md_rows(root / "tables" / "scl_views.md")}
    assert "✱" in rows["scl_viewsone"][-2] and "✱" not in rows["scl_viewsmulti"][-2]
    assert rows["baseline"][-2] == "reference"


def test_rdrop_step_time_ratio_is_cell_over_baseline_per_seed(results):
    root, _ = results
    t = pd.read_csv(root / "tables" / "rdrop.csv").set_index("cell")
    assert t.loc["baseline", "step_time_ratio_mean"] == pytest.approx(1.0)
    for cell, ratios in RDROP_RATIO.items():
        assert t.loc[cell, "step_time_ratio_mean"] == pytest.approx(np.mean(ratios))
        assert t.loc[cell, "step_time_ratio_std"] == pytest.approx(np.std(ratios, ddof=1))
    md = (root / "tables" / "rdrop.md").read_text()
    assert "same machine" in md and "two-stage" in md and "2.00 ± 0.10" in md


def test_token_table_is_k_rows_by_alpha_columns(results):
    root, _ = results
    rows = md_rows(root / "tables" / "token_k_alpha.md")
    assert [r[0] for r in rows] == ["30", "60", "90"]
    assert all(len(r) == 3 for r in rows)
    header = [l for l in (root / "tables" / "token_k_alpha.md").read_text().splitlines() if l.startswith("|")][0]
    assert "α = 0.2" in header and "α = 0.5" in header
    assert len(pd.read_csv(root / "tables" / "token_k_alpha.csv")) == 1 + 6


def test_every_figure_is_a_valid_png(results):
    _, outputs = results
    figures = [p for k, p in outputs.items() if p.endswith(".png")]
    assert {f.rsplit("/", 1)[1] for f in figures} == {"forest.png", "loss_curves.png", "grad_norm.png", "rdrop_cost.png",
                                                      "tsne_k_alpha.png", "multilayer_bars.png"}
    for f in figures:
        data = open(f, "rb").read()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, f


def test_outputs_follow_the_families_in_the_grid():
    only_baseline = output_paths("results", ["baseline"])
    assert "results/tables/headline.md" in only_baseline.values()
    assert "results/figures/forest.png" in only_baseline.values()
    assert not any("rdrop" in p or "token" in p or "multilayer" in p for p in only_baseline.values())
    assert {o.name for o in planned(["baseline", "token"])} >= {"token_k_alpha", "tsne_k_alpha"}


def test_cells_are_compared_with_their_compare_to_reference_listed_after_the_baseline(tmp_path):
    """token cells compared with `lora`: Δ is to lora's accuracy, and lora's row follows the baseline's."""
    grid = {"baseline": ("baseline", base_correct, "baseline"), "lora": ("baseline", better, "baseline"),
            "token_k30_alpha0.2": ("token", better, "lora"), "token_k60_alpha0.2": ("token", base_correct, "lora")}
    rows = []
    for cell, (family, correct, ref) in grid.items():
        d = tmp_path / cell / "seed1"
        write_run(d, cell, 1, family, {}, correct(1))
        k = int(cell.split("_k")[1].split("_")[0]) if family == "token" else None
        sweep = {"k": k, "alpha": 0.2} if k else {}
        rows.append({"cell": cell, "seed": 1, "family": family, "reference": ref, "sweep": sweep, "params": sweep,
                     "dir": str(d)})
    outputs = {"headline_csv": str(tmp_path / "headline.csv"), "token_k_alpha_csv": str(tmp_path / "token.csv"),
               "token_k_alpha_md": str(tmp_path / "token.md")}
    aggregate(rows, outputs, n_boot=500)
    token = pd.read_csv(tmp_path / "token.csv").set_index("cell")
    assert token.index.tolist() == ["baseline", "lora", "token_k30_alpha0.2", "token_k60_alpha0.2"]
    assert token.loc["token_k30_alpha0.2", "reference"] == "lora"
    assert token.loc["token_k30_alpha0.2", "delta"] == pytest.approx(0.0)
    assert token.loc["token_k60_alpha0.2", "delta"] == pytest.approx(-0.08)
    assert token.loc["token_k60_alpha0.2", "significant"] and not token.loc["token_k30_alpha0.2", "significant"]
    assert "lora: 0.8800" in (tmp_path / "token.md").read_text()


def test_legend_labels_fall_back_to_cell_names_when_sweep_values_do_not_tell_cells_apart():
    from contrastlab.aggregate.collect import CellInfo, Study
    from contrastlab.aggregate.figures import _labels

    def info(name, experiment, sweep, params):
        return CellInfo(name, experiment, "scl", "baseline", sweep, params)

    cells = {"scl_viewsone": info("scl_viewsone", "scl", {"views": "one"}, {"views": "one", "normalize": True}),
             "scl_viewsmulti": info("scl_viewsmulti", "scl", {"views": "multi"}, {"views": "multi", "normalize": True}),
             "scl_nonorm": info("scl_nonorm", "scl_nonorm", {}, {"views": "one", "normalize": False})}
    study = Study(pd.DataFrame(), cells, "baseline")
    assert _labels(study, ["scl_viewsone", "scl_viewsmulti"], ["views"]) == {
        "scl_viewsone": "views=one", "scl_viewsmulti": "views=multi"}
    assert _labels(study, list(cells), ["views"]) == {c: c for c in cells}  # two would read "views=one"
