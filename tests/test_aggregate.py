"""Aggregate tables, figures, verdict and landing page from fake per-cell results with known
differences: the baseline row first, mean ± std over seeds, a real difference flagged (Holm) and a
null one not, the R-Drop step-time ratio, the k x alpha shape, trainable parameters and the loss
form in every comparison table, collapsed cells marked everywhere, a warning when cells ran on
different devices, valid PNGs, outputs fixed by the grid's families."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contrastlab.objectives import families

from contrastlab.plan import layout
from contrastlab.analysis.aggregate import figures
from contrastlab.analysis.aggregate.collect import collect
from contrastlab.analysis.aggregate.compare import compare_all
from contrastlab.analysis.aggregate.tables import fmt_p
from contrastlab.analysis.aggregate.run import aggregate
from contrastlab.analysis.aggregate.verdict import landing_page, verdict_lines
from contrastlab.analysis.stats import detectable, holm
from contrastlab.plan.study import report_outputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = [1, 2, 3]
N_TEST = 1000
BASE_ACC = {1: 0.80, 2: 0.81, 3: 0.79}
BASE_STEP = {1: 0.10, 2: 0.12, 3: 0.11}
RDROP_RATIO = {"rdrop_stages1": [1.4, 1.5, 1.6], "rdrop_stages2": [1.9, 2.0, 2.1]}
DEVICE = "NVIDIA H100 80GB HBM3"
FULL, LORA = 28_354_562, 1_234_567  # trainable parameters: top layers + head, LoRA adapters + head
GUNEL = {"views": "one", "weighting": "convex", "alpha": 0.9, "tau": 0.3, "reduction": "sum"}
GUNEL_FORM = "(1 − 0.9)·CE + 0.9·SupCon (sum over anchors)"


def base_correct(seed, acc=None):
    rng = np.random.default_rng(seed)
    c = np.zeros(N_TEST, bool)
    c[rng.permutation(N_TEST)[: int((acc or BASE_ACC.get(seed, 0.8)) * N_TEST)]] = True
    return c


def changed(seed, fixed, broken):
    """The baseline's predictions with `fixed` of its errors made right and `broken` of its right
    answers made wrong: Δ = (fixed − broken) / N_TEST on the same examples."""
    c = base_correct(seed).copy()
    right, wrong = np.flatnonzero(c), np.flatnonzero(~c)
    c[wrong[:fixed]], c[right[:broken]] = True, False
    return c


def better(seed):
    """80 of the baseline's errors fixed: +0.08 accuracy on the same examples."""
    return changed(seed, 80, 0)


def same_accuracy(seed):
    """60 right->wrong and 60 wrong->right: Δ exactly 0."""
    return changed(seed, 60, 60)


def write_run(root, cell, seed, family, loss, correct, trainable=FULL, collapsed=None, device=DEVICE, precision="bf16"):
    """One cell x seed's result files at the layout's paths -> its `files` for the aggregate."""
    train = layout.stage_files(str(root), "train", cell, seed)
    files = {f"train_{k}": v for k, v in train.items()}
    files.update(probe_metrics=layout.stage_files(str(root), "probe", cell, seed)["metrics"],
                 tsne_xy=layout.stage_files(str(root), "plot", cell, seed)["tsne_xy"])
    for p in files.values():
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    step = BASE_STEP.get(seed, 0.5) * (RDROP_RATIO[cell][SEEDS.index(seed)] if cell in RDROP_RATIO else 1.0)
    aux = {"rdrop": "kl", "baseline": None}.get(family, "supcon")
    weights = {"ce": 1.0, **({aux: 0.2} if aux else {})}
    Path(files["train_metrics"]).write_text(json.dumps(
        {"accuracy": float(correct.mean()), "roc_auc": 0.9, "macro_f1": float(correct.mean()), "n_test": N_TEST,
         "steps": 40, "train_time_s": 40 * step, "step_time_s": step, "peak_memory_mb": 1000.0 + 10 * seed,
         "trainable_params": trainable, "ce_term": "ce", "loss_weights": weights,
         "loss_shares": {k: v / sum(weights.values()) for k, v in weights.items()}, "collapsed": collapsed,
         "provenance": {"device_name": device, "precision": precision, "torch": "2.5.1", "transformers": "4.46.0",
                        "peft": "0.13.0", "cuda": "12.4", "code_hash": f"{cell}-hash"}}))
    Path(files["probe_metrics"]).write_text(json.dumps(
        {"svm_acc": 0.85 + 0.01 * seed, "knn1_acc": 0.8, "kmeans_ari": 0.5, "kmeans_nmi": 0.4, "silhouette": 0.1,
         "alignment": 0.5, "uniformity": -2.0, "intra_cos": 0.6, "inter_cos": 0.2, "layer0_svm_acc": 0.7}))
    label = rng.integers(0, 2, N_TEST)
    pred = np.where(correct, label, 1 - label)
    # rows are the test examples' source rows; each cell writes them in its own order, so the
    # comparison must pair by row, not by position
    order = np.random.default_rng(abs(hash(cell)) % 2**32).permutation(N_TEST)
    pd.DataFrame({"index": np.arange(N_TEST), "row": 5000 + 3 * order, "label": label[order], "pred": pred[order],
                  "correct": correct[order].astype(int), "prob_neg": 1.0 - pred[order],
                  "prob_pos": pred[order].astype(float)}).to_csv(files["train_predictions"], index=False)
    steps = np.arange(1, 41)
    hist = {"step": steps, "epoch": 1 + (steps > 20), "loss": np.exp(-steps / 20) + 0.1,
            "grad_norm": 1 + rng.random(40), "lr": 1e-4, "time_s": step}
    hist["loss_ce"] = hist["loss"] * 0.8
    hist.update({"loss_ce1": hist["loss_ce"], "loss_ce2": hist["loss_ce"], "loss_kl": hist["loss"] * 0.1}
                if family == "rdrop" else {f"loss_{aux}": hist["loss"] * 0.2} if aux else {})
    pd.DataFrame(hist).to_csv(files["train_history"], index=False)
    pd.DataFrame({"step": [20, 40], "epoch": [1, 2], "train_loss": [0.6, 0.4], "val_loss": [0.55, 0.45],
                  "val_accuracy": [0.75, float(correct.mean())]}).to_csv(files["train_epochs"], index=False)
    Path(files["train_config"]).write_text(json.dumps({"cell": cell, "family": family, "seed": seed, "loss": loss}))
    np.savez(files["tsne_xy"], xy=rng.normal(size=(60, 2)), labels=np.repeat([0, 1], 30),
             label_names=np.array(["neg", "pos"]))
    return files


def run_of(root, cell, seed, experiment, family, sweep, loss, correct, reference="baseline", prepared=None, **kw):
    """What the workflow passes per cell x seed (workflow/rules/common.smk): the loss params with
    the family's defaults filled in, and the paths of the cell's files."""
    params = families.parse_params(family, loss)
    loss = params.model_dump()
    return {"cell": cell, "seed": seed, "experiment": experiment, "family": family, "sweep": sweep, "params": loss,
            "form": params.form(),
            "reference": reference, "prepared": prepared,
            "files": write_run(root, cell, seed, family, loss, correct, **kw)}


# cell -> (experiment, family, sweep, loss, correct(seed), trainable)
GRID = {
    "baseline": ("baseline", "baseline", {}, {}, base_correct, FULL),
    "scl_viewsone": ("scl", "scl", {"views": "one"}, {"views": "one"}, better, FULL),
    "scl_viewsmulti": ("scl", "scl", {"views": "multi"}, {"views": "multi"}, same_accuracy, FULL),
    "scl_gunel": ("scl_gunel", "scl", {}, GUNEL, same_accuracy, FULL),
    "rdrop_stages1": ("rdrop", "rdrop", {"stages": 1}, {"stages": 1}, same_accuracy, FULL),
    "rdrop_stages2": ("rdrop", "rdrop", {"stages": 2}, {"stages": 2}, same_accuracy, FULL),
    **{f"token_alpha{a}_k{k}": ("token", "token", {"k": k, "alpha": a}, {"k": k, "alpha": a}, same_accuracy, LORA)
       for k in (30, 60, 90) for a in (0.2, 0.5)},
    **{f"cluster_n_clusters{n}": ("cluster", "cluster", {"n_clusters": n}, {"n_clusters": n}, same_accuracy, FULL)
       for n in (5, 10)},
    **{f"ml_layers{'-'.join(map(str, ls))}_level{lv}": ("ml", "multilayer", {"layers": ls, "level": lv},
                                                       {"layers": ls, "level": lv}, same_accuracy, FULL)
       for ls in ([0, 1, 2, 3], [8, 9, 10, 11]) for lv in ("token", "sentence")},
}
CONFIG = {"model": {"name": "microsoft/deberta-v3-base"}, "data": {"source": "embedded"},
          "experiments": dict.fromkeys(["baseline", "scl", "scl_gunel", "rdrop", "token", "cluster", "ml"], {})}
COMPARISON_TABLES = ["headline", "scl_views", "rdrop", "cluster", "multilayer"]
ALL_FAMILIES = list(dict.fromkeys(family for _, family, *_ in GRID.values()))


def all_outputs(root, families=ALL_FAMILIES):
    return {**layout.output_paths(str(root), report_outputs(families)), "landing": layout.landing_file(str(root))}


def declared(families=ALL_FAMILIES):
    """The families' outputs with their builders, as the workflow passes them (common.smk aggregate_report)."""
    return [o.job_param() for o in report_outputs(families) if o.family is not None]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    prepared = Path(layout.prepared_dir(str(root), "base"))
    prepared.mkdir(parents=True)
    (prepared / "labels.json").write_text(json.dumps(
        {"names": ["neg", "pos"], "counts": {"train": {"neg": 400, "pos": 400}, "val": {"neg": 50, "pos": 50},
                                             "test": {"neg": 500, "pos": 500}}}))
    runs = [run_of(root, cell, seed, experiment, family, sweep, loss, correct(seed), prepared=str(prepared),
                   trainable=trainable)
            for cell, (experiment, family, sweep, loss, correct, trainable) in GRID.items() for seed in SEEDS]
    outputs = all_outputs(root)
    aggregate(runs, outputs, baseline="baseline", config=CONFIG, source="config/test.yaml", report=declared())
    return root, outputs


def md_table(path):
    """The first Markdown table in the file: a list of {header: cell string} rows."""
    lines = [line for line in Path(path).read_text().splitlines() if line.startswith("|")]
    header, *rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(header, r)) for r in rows[1:]]


def md_rows(path):
    return {r["cell"].split(" ")[0]: r for r in md_table(path)}


def test_every_table_starts_with_the_baseline_row_and_says_what_its_numbers_are(results):
    root, _ = results
    for name in ("headline", "rdrop", "scl_views", "cluster", "representation", "multilayer", "token_k_alpha"):
        assert pd.read_csv(root / "tables" / f"{name}.csv")["cell"].iloc[0] == "baseline", name
        text = (root / "tables" / f"{name}.md").read_text()
        assert text.startswith("# ") and "mean ± std" in text.lower(), name
        if name != "token_k_alpha":  # a pivot: its rows are k values, the baseline is in its note
            assert md_table(root / "tables" / f"{name}.md")[0]["cell"] == "baseline", name


def test_mean_and_std_are_over_seeds(results):
    root, _ = results
    t = pd.read_csv(root / "tables" / "headline.csv").set_index("cell")
    accs = [BASE_ACC[s] for s in SEEDS]
    assert t.loc["baseline", "accuracy_mean"] == pytest.approx(np.mean(accs))
    assert t.loc["baseline", "accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert t.loc["baseline", "seeds"] == 3
    assert md_table(root / "tables" / "headline.md")[0]["accuracy"] == "0.8000 ± 0.0100"


def test_a_real_difference_is_flagged_and_a_null_one_is_not(results):
    """✱ marks a difference whose Holm-adjusted p is below 0.05 (here its interval also excludes
    0); a null difference's interval covers 0 and it is not marked."""
    root, _ = results
    t = pd.read_csv(root / "tables" / "headline.csv").set_index("cell")
    one, multi = t.loc["scl_viewsone"], t.loc["scl_viewsmulti"]
    assert one["delta"] == pytest.approx(0.08)
    assert one["delta_lo"] > 0 and one["p_holm"] < 0.05 and one["significant"] and one["verdict"] == "better"
    assert multi["delta"] == pytest.approx(0.0)
    assert multi["delta_lo"] < 0 < multi["delta_hi"]
    assert multi["p_holm"] > 0.05 and not multi["significant"] and multi["verdict"] in ("undecided", "equivalent")
    assert one["mcnemar_p"] < 0.001 and multi["mcnemar_p"] > 0.5  # paired by row: the shuffled files line up
    rows = md_rows(root / "tables" / "scl_views.md")
    delta = "Δ accuracy [95% CI]"
    assert "✱" in rows["scl_viewsone"][delta] and "✱" not in rows["scl_viewsmulti"][delta]
    assert rows["baseline"][delta] == "reference"
    assert rows["scl_viewsone"]["p (Holm)"] == fmt_p(one["p_holm"])  # the adjusted p, not the raw one
    assert one["p_holm"] > one["p"]


def test_holm_adjusts_over_every_comparison_of_the_study_not_per_table(results):
    root, _ = results
    head = pd.read_csv(root / "tables" / "headline.csv").set_index("cell")
    compared = head[head["delta"].notna()]
    assert len(compared) == len(GRID) - 1
    assert compared["p_holm"].to_numpy() == pytest.approx(holm(compared["p"].to_numpy()))
    assert (compared["p_holm"] > compared["p"]).any()  # the adjustment did something
    assert (compared["significant"] == (compared["p_holm"] < 0.05)).all()
    for name in ("scl_views", "rdrop", "cluster", "multilayer", "token_k_alpha"):
        t = pd.read_csv(root / "tables" / f"{name}.csv").set_index("cell")
        shared = t.index[t["delta"].notna()]
        assert t.loc[shared, "p_holm"].to_numpy() == pytest.approx(head.loc[shared, "p_holm"].to_numpy()), name


def test_holm_rule_a_difference_whose_interval_excludes_zero_is_not_real_after_adjustment(tmp_path):
    """Twelve comparisons with one seed: a strong cell (+0.08), a marginal one (30 fixed, 13
    broken: z ~ 2.6, raw p ~ 0.01, its 95% interval excludes 0) and ten nulls. Holm multiplies the
    marginal p by 11: it is not a real difference; the strong one stays real."""
    grid = {"baseline": base_correct(1), "strong": changed(1, 80, 0), "marginal": changed(1, 30, 13),
            **{f"null{i}": changed(1, 20 + i, 20 + i) for i in range(10)}}
    runs = [run_of(tmp_path, cell, 1, cell, "baseline", {}, {}, correct) for cell, correct in grid.items()]
    comp = compare_all(collect(runs, "baseline"), {"seed_sd": 0.0}).set_index("cell")  # a pilot: no seed spread
    m, s = comp.loc["marginal"], comp.loc["strong"]
    assert m["diff"] == pytest.approx(0.017)
    assert m["lo"] > 0 and m["p"] < 0.05  # the old rule (interval excludes 0) would call it real
    assert m["p_holm"] > 0.05 and not m["significant"] and m["verdict"] in ("undecided", "equivalent")
    assert s["significant"] and s["verdict"] == "better"
    compared = comp[comp["diff"].notna()]
    assert compared["p_holm"].to_numpy() == pytest.approx(holm(compared["p"].to_numpy()))
    assert comp.loc["baseline", "verdict"] == "reference" and np.isnan(comp.loc["baseline", "p_holm"])


def test_verdict_line_states_delta_interval_holm_p_word_and_detectable_difference(tmp_path):
    """One seed, 1000 test examples, no seed-variance estimate. `better`: 60 fixed, 20 broken:
    Δ = +0.04, se = sqrt((p_d − Δ²)/n) ~ 0.00885 on test-set noise alone, significant, but the
    seed spread is unmeasured: provisional, not better. `null`: 22 fixed, 20 broken: Δ = +0.002,
    undecided, with the MDD at its Holm level (0.05, the second of two steps)."""
    grid = {"baseline": base_correct(1), "better": changed(1, 60, 20), "null": changed(1, 22, 20)}
    runs = [run_of(tmp_path, cell, 1, cell, "baseline", {}, {}, correct) for cell, correct in grid.items()]
    study = collect(runs, "baseline")
    comp = compare_all(study)
    r = comp.set_index("cell").loc["better"]
    assert r["diff"] == pytest.approx(0.04)
    assert r["se"] == pytest.approx(math.sqrt((0.08 - 0.04 ** 2) / 1000), rel=0.1)
    assert r["holm_level"] == pytest.approx(0.025) and r["mdd"] == pytest.approx(detectable(r["se"], r["df"], 0.025))
    assert r["verdict"] == "provisional" and not r["significant"] and r["p_holm"] < 0.05
    lines = dict(zip(["better", "null"], verdict_lines(study, comp)))
    line = lines["better"]
    assert line.startswith("**better** vs baseline: Δ +0.040 ")
    assert f"[{r['lo']:+.3f}, {r['hi']:+.3f}]" in line and r["lo"] > 0
    assert "Holm p < 0.001" in line and "→ **provisional**" in line and "test-set noise alone says better" in line
    assert "seed variance not measured" in line

    n = comp.set_index("cell").loc["null"]
    assert n["diff"] == pytest.approx(0.002) and n["verdict"] == "undecided" and n["holm_level"] == 0.05
    assert "→ **undecided**" in lines["null"]
    assert f"MDD {n['mdd']:.3f} at 80% power at Holm level 0.0500" in lines["null"]


def test_verdict_line_with_several_seeds_does_not_claim_the_one_seed_caveat(results):
    root, _ = results
    text = (root / "tables" / "headline.md").read_text()
    line = next(l for l in text.splitlines() if l.startswith("- **scl_viewsone**"))
    assert "→ **better**" in line and "3 seeds" in line and "one seed" not in line
    row = pd.read_csv(root / "tables" / "headline.csv").set_index("cell").loc["scl_viewsone"]
    assert row["se"] > 0 and row["mdd"] == pytest.approx(detectable(row["se"], row["df"] if "df" in row else math.inf,
                                                                    row["holm_level"]), rel=0.05)


def test_one_seed_cell_against_a_reference_with_more_seeds_makes_no_seed_count_claim(tmp_path):
    """seeds_needed is only estimated for one seed against one seed; the line must not then say the
    difference is detectable (its verdict here is no detectable difference)."""
    runs = [run_of(tmp_path, "baseline", s, "baseline", "baseline", {}, {}, base_correct(s)) for s in (1, 2)]
    runs.append(run_of(tmp_path, "x", 1, "x", "baseline", {}, {}, changed(1, 5, 3)))
    study = collect(runs, "baseline")
    comp = compare_all(study)
    r = comp.set_index("cell").loc["x"]
    assert r["seeds"] == 1 and not r["paired_seeds"] and pd.isna(r["seeds_needed"])
    (line,) = verdict_lines(study, comp)
    assert "→ **undecided**" in line and "(1000 test examples, 1 seed;" in line
    assert "needs" not in line


def test_collapsed_cell_is_marked_in_every_table_and_its_verdict_says_collapsed(tmp_path, monkeypatch):
    reason = "predicts only 'neg'; ce never fell below its start (0.693); supcon was 91% of its loss"
    flag = {"one_class": True, "ce_stuck": True, "dominant_term": "supcon", "dominant_share": 0.91, "reason": reason}
    runs = [run_of(tmp_path, "baseline", 1, "baseline", "baseline", {}, {}, base_correct(1)),
            run_of(tmp_path, "scl_viewsone", 1, "scl", "scl", {"views": "one"}, {"views": "one"},
                   base_correct(1, acc=0.5), collapsed=flag),
            run_of(tmp_path, "scl_viewsmulti", 1, "scl", "scl", {"views": "multi"}, {"views": "multi"},
                   better(1))]
    forest_input = []
    plot_forest = figures.plot_forest
    monkeypatch.setattr(figures, "plot_forest", lambda df, path, **kw: forest_input.append(
        (df.copy(), plot_forest(df, path, **kw))))
    outputs = {k: v for k, v in all_outputs(tmp_path, ["baseline", "scl"]).items()
               if k.split("_")[0] in ("headline", "scl", "representation", "forest", "landing")}
    aggregate(runs, outputs, baseline="baseline", analysis={"seed_sd": 0.0}, report=declared(["baseline", "scl"]))

    for name in ("headline", "scl_views", "representation"):
        rows = {r["cell"]: r for r in md_table(outputs[f"{name}_md"])}
        assert "scl_viewsone ⚠" in rows and "scl_viewsmulti" in rows and "baseline" in rows, name
        text = Path(outputs[f"{name}_md"]).read_text()
        assert "⚠ = degenerate" in text and f"scl_viewsone: {reason}" in text, name  # the note says why
        assert "⚠" not in rows["scl_viewsmulti"]["cell"] + rows["baseline"]["cell"]
    head = pd.read_csv(outputs["headline_csv"]).set_index("cell")
    assert head.loc["scl_viewsone", "verdict"] == "collapsed"  # not "worse", though its Δ is -0.3
    assert head.loc["scl_viewsone", "collapsed"] == reason
    assert head.loc["scl_viewsmulti", "verdict"] == "better"
    line = next(l for l in Path(outputs["headline_md"]).read_text().splitlines() if l.startswith("- **scl_viewsone**"))
    assert "→ **collapsed**" in line and reason in line
    assert reason in Path(outputs["landing"]).read_text()
    ((df, drawn),) = forest_input
    assert df.set_index("cell")["verdict"].to_dict() == {"scl_viewsone": "collapsed", "scl_viewsmulti": "better"}
    lo, hi = drawn["xlim"]  # the axis spans the real comparison (Δ +0.08), the collapsed cell (−0.3) is at its edge
    assert -0.05 < lo < 0 and drawn["edge"] == {"scl_viewsone": lo} and hi > 0.08
    assert Path(outputs["forest"]).read_bytes()[:8] == PNG_MAGIC


def test_every_comparison_table_shows_trainable_parameters_and_the_loss_form(results):
    root, _ = results
    forms = {"baseline": "CE", "scl_gunel": GUNEL_FORM, "scl_viewsone": "CE + 0.2·SupCon",
             "rdrop_stages2": "CE1 + CE2 + 0.2·KL (batchmean)", "token_alpha0.5_k60": "CE + 0.5·SupCon over top-60 tokens"}
    for name in [*COMPARISON_TABLES, "token_k_alpha"]:
        t = pd.read_csv(root / "tables" / f"{name}.csv").set_index("cell")
        assert t.loc["baseline", "trainable_params_mean"] == FULL, name
        assert t.loc["baseline", "loss"] == "CE", name
        for cell, form in forms.items():
            if cell in t.index:
                assert t.loc[cell, "loss"] == form, (name, cell)
                assert t.loc[cell, "trainable_params_mean"] == GRID[cell][5], (name, cell)
        if name == "token_k_alpha":  # a pivot: the CSV has them, the note says so
            assert "trainable parameters and loss" in (root / "tables" / f"{name}.md").read_text()
            continue
        rows = md_rows(root / "tables" / f"{name}.md")
        assert rows["baseline"]["trainable"] == "28.35M" and rows["baseline"]["loss"] == "CE", name
        for cell, form in forms.items():
            if cell in rows:
                assert rows[cell]["loss"] == form, (name, cell)
    head = md_rows(root / "tables" / "headline.md")
    assert head["token_alpha0.2_k30"]["trainable"] == "1.23M"
    assert head["scl_gunel"]["loss"] == GUNEL_FORM


def test_cells_that_ran_on_different_devices_get_a_warning_in_the_table_notes(tmp_path, results):
    runs = [run_of(tmp_path, "baseline", 1, "baseline", "baseline", {}, {}, base_correct(1), device=DEVICE),
            run_of(tmp_path, "scl_viewsone", 1, "scl", "scl", {"views": "one"}, {"views": "one"}, better(1),
                   device="NVIDIA A100-SXM4-40GB")]
    outputs = {k: v for k, v in all_outputs(tmp_path, ["baseline", "scl"]).items()
               if k.endswith("_md") and k.split("_")[0] in ("headline", "scl", "representation")}
    aggregate(runs, outputs, baseline="baseline", report=declared(["baseline", "scl"]))
    for path in outputs.values():
        text = Path(path).read_text()
        assert f"WARNING: these cells ran on different device_name (NVIDIA A100-SXM4-40GB, {DEVICE})" in text, path
        assert "precision (" not in text  # what agrees is not named
    root, _ = results  # every cell of the main study ran on one device: no warning
    for name in [*COMPARISON_TABLES, "representation"]:
        assert "WARNING" not in (root / "tables" / f"{name}.md").read_text(), name


def test_cells_that_auto_resolved_to_different_precisions_get_a_warning_and_the_landing_page_names_both(tmp_path):
    runs = [run_of(tmp_path, "baseline", 1, "baseline", "baseline", {}, {}, base_correct(1), precision="fp32"),
            run_of(tmp_path, "scl_viewsone", 1, "scl", "scl", {"views": "one"}, {"views": "one"}, better(1))]
    outputs = {k: v for k, v in all_outputs(tmp_path, ["baseline", "scl"]).items()
               if k == "landing" or (k.endswith("_md") and k.split("_")[0] in ("headline", "scl"))}
    aggregate(runs, outputs, baseline="baseline", report=declared(["baseline", "scl"]))
    for name, path in outputs.items():
        text = Path(path).read_text()
        if name == "landing":
            assert "precision bf16, fp32" in text
        else:
            assert "WARNING: these cells ran on different precision (bf16, fp32)" in text, path


def test_landing_page_states_the_study_and_lists_the_verdict(results):
    root, outputs = results
    text = Path(outputs["landing"]).read_text()
    assert outputs["landing"] == layout.landing_file(str(root))
    assert "``config/test.yaml``" in text
    assert f"{len(GRID)} cells x 3 seed(s) (1, 2, 3) = {3 * len(GRID)} training runs" in text
    assert "baseline ``baseline``" in text
    assert "``microsoft/deberta-v3-base``" in text and "precision bf16" in text and DEVICE in text
    assert "train 800, val 100, test 1000 examples" in text
    head = pd.read_csv(root / "tables" / "headline.csv").set_index("cell")
    lines = [l[2:] for l in text.splitlines() if l.startswith("- **") and " vs " in l]
    assert [l.split("**")[1] for l in lines] == [c for c in head.index if c != "baseline"]
    for l in lines:
        cell = l.split("**")[1]
        assert f"→ **{head.loc[cell, 'verdict']}" in l  # "equivalent" reads "equivalent within ±δ"
    md = (root / "tables" / "headline.md").read_text()
    assert all(f"- {l}" in md for l in lines)  # the headline's verdict is the same list


def test_landing_page_of_a_baseline_only_study_says_there_is_nothing_to_compare(tmp_path):
    runs = [run_of(tmp_path, "baseline", s, "baseline", "baseline", {}, {}, base_correct(s)) for s in (1, 2)]
    study = collect(runs, "baseline", meta={"source": "c.yaml", "model": "m"})
    text = landing_page(study, compare_all(study))
    assert "``c.yaml``" in text and "1 cells x 2 seed(s) (1, 2) = 2 training runs" in text
    assert "only the baseline: nothing to compare" in text
    assert "- **Data**: ?." in text  # no sizes known: no dangling separator


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
    rows = md_table(root / "tables" / "token_k_alpha.md")
    assert [list(r.values())[0] for r in rows] == ["30", "60", "90"]
    assert all(len(r) == 3 for r in rows)
    assert list(rows[0])[1:] == ["α = 0.2", "α = 0.5"]
    assert len(pd.read_csv(root / "tables" / "token_k_alpha.csv")) == 1 + 6


def test_every_figure_is_a_valid_png(results):
    _, outputs = results
    figs = [p for p in outputs.values() if p.endswith(".png")]
    assert {f.rsplit("/", 1)[1] for f in figs} == {"forest.png", "seed_scores.png", "loss_curves.png", "grad_norm.png",
                                                   "val_curves.png", "rdrop_cost.png", "tsne_k_alpha.png",
                                                   "multilayer_bars.png", "scl_grad_norm.png"}
    for f in figs:
        data = open(f, "rb").read()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, f


def test_outputs_follow_the_families_in_the_grid():
    only_baseline = layout.output_paths("results", report_outputs(["baseline"]))
    assert "results/tables/headline.md" in only_baseline.values()
    assert "results/figures/forest.png" in only_baseline.values()
    common = [o.name for o in report_outputs([])]
    for family in families.NAMES:  # each family adds its own outputs, after those of every study
        assert [o.name for o in report_outputs([family])] == common + [o.name for o in families.outputs(family)]
    assert {o.name for o in report_outputs(["baseline", "token"])} >= {"token_k_alpha", "tsne_k_alpha"}
    without_probes = {o.name for o in report_outputs(["baseline"], probes=False)}
    assert "representation" not in without_probes and "headline" in without_probes


def test_cells_are_compared_with_their_reference_listed_after_the_baseline(tmp_path):
    """token cells compared with `lora`: Δ is to lora's accuracy, and lora's row follows the baseline's."""
    grid = {"baseline": ("baseline", base_correct, "baseline", {}), "lora": ("baseline", better, "baseline", {}),
            "token_alpha0.2_k30": ("token", better, "lora", {"k": 30, "alpha": 0.2}),
            "token_alpha0.2_k60": ("token", base_correct, "lora", {"k": 60, "alpha": 0.2})}
    runs = [run_of(tmp_path, cell, 1, cell.split("_")[0], family, sweep, sweep, correct(1), reference=ref)
            for cell, (family, correct, ref, sweep) in grid.items()]
    outputs = {"headline_csv": str(tmp_path / "headline.csv"), "token_k_alpha_csv": str(tmp_path / "token.csv"),
               "token_k_alpha_md": str(tmp_path / "token.md")}
    aggregate(runs, outputs, baseline="baseline", analysis={"seed_sd": 0.0}, report=declared(["baseline", "token"]))
    token = pd.read_csv(tmp_path / "token.csv").set_index("cell")
    assert token.index.tolist() == ["baseline", "lora", "token_alpha0.2_k30", "token_alpha0.2_k60"]
    assert token.loc["token_alpha0.2_k30", "reference"] == "lora"
    assert token.loc["token_alpha0.2_k30", "delta"] == pytest.approx(0.0)
    assert token.loc["token_alpha0.2_k60", "delta"] == pytest.approx(-0.08)
    assert token.loc["token_alpha0.2_k60", "significant"] and not token.loc["token_alpha0.2_k30", "significant"]
    assert token.loc["token_alpha0.2_k60", "verdict"] == "worse"
    assert "lora: 0.8800" in (tmp_path / "token.md").read_text()


def test_legend_labels_fall_back_to_cell_names_when_sweep_values_do_not_tell_cells_apart():
    from contrastlab.analysis.aggregate.collect import CellInfo, Study
    from contrastlab.analysis.aggregate.figures import _labels

    def info(name, experiment, sweep, params):
        return CellInfo(name, experiment, "scl", "baseline", sweep, params)

    cells = {"scl_viewsone": info("scl_viewsone", "scl", {"views": "one"}, {"views": "one", "normalize": True}),
             "scl_viewsmulti": info("scl_viewsmulti", "scl", {"views": "multi"}, {"views": "multi", "normalize": True}),
             "scl_nonorm": info("scl_nonorm", "scl_nonorm", {}, {"views": "one", "normalize": False})}
    study = Study(pd.DataFrame(), cells, "baseline")
    assert _labels(study, ["scl_viewsone", "scl_viewsmulti"], ["views"]) == {
        "scl_viewsone": "views=one", "scl_viewsmulti": "views=multi"}
    assert _labels(study, list(cells), ["views"]) == {c: c for c in cells}  # two would read "views=one"


def test_a_cell_compared_with_a_collapsed_reference_gets_no_better_or_worse_verdict(tmp_path):
    flag = {"one_class": True, "ce_stuck": False, "dominant_term": "ce", "dominant_share": 1.0,
            "reason": "predicts only 'neg'; its loss is the cross-entropy alone"}
    runs = [run_of(tmp_path, "baseline", 1, "baseline", "baseline", {}, {}, base_correct(1)),
            run_of(tmp_path, "lora", 1, "lora", "baseline", {}, {}, base_correct(1, acc=0.5), collapsed=flag),
            {**run_of(tmp_path, "token_alpha0.2_k30", 1, "token", "token", {"k": 30, "alpha": 0.2},
                      {"k": 30, "alpha": 0.2}, better(1)), "reference": "lora"}]
    outputs = {k: v for k, v in all_outputs(tmp_path, ["baseline", "token"]).items() if k.startswith("headline")}
    aggregate(runs, outputs, baseline="baseline", analysis={"seed_sd": 0.0})
    head = pd.read_csv(outputs["headline_csv"]).set_index("cell")
    assert head.loc["lora", "verdict"] == "collapsed"
    assert head.loc["token_alpha0.2_k30", "verdict"] == "reference collapsed"  # its Δ is large, but to a broken arm
    line = next(l for l in Path(outputs["headline_md"]).read_text().splitlines() if l.startswith("- **token"))
    assert "reference collapsed" in line and "says nothing of the method" in line and "outside Holm's family" in line
    # issue 18: both comparisons leave Holm's family and get no ✱, though their p-values are tiny
    assert head.loc[["lora", "token_alpha0.2_k30"], "p_holm"].isna().all()
    assert not head.loc[["lora", "token_alpha0.2_k30"], "significant"].any()
    assert head.loc["token_alpha0.2_k30", "p"] < 1e-6
    rows = md_rows(outputs["headline_md"])
    assert not any("✱" in r["Δ accuracy [95% CI]"] for r in rows.values())
    assert "outside Holm's family" in Path(outputs["headline_md"]).read_text()


def test_five_seeds_get_almost_stochastic_order_beside_the_t_test_and_equivalence_is_told_from_undecided(tmp_path):
    """>= 5 seeds: ε_min of ASO (deepsig) on the per-seed accuracies is near 0 for a cell better in
    every seed and near 1 for a worse one. A cell with Δ exactly 0 in every seed is equivalent
    within ±0.01 (its 90% interval is inside), not merely undecided."""
    seeds = [1, 2, 3, 4, 5]
    grid = {"baseline": base_correct, "up": better, "down": lambda s: changed(s, 0, 80), "same": same_accuracy}
    runs = [run_of(tmp_path, cell, s, cell, "baseline", {}, {}, fn(s)) for cell, fn in grid.items() for s in seeds]
    comp = compare_all(collect(runs, "baseline"), {"n_boot": 200}).set_index("cell")
    assert comp.loc["up", "aso_eps_min"] < 0.2 < 0.8 < comp.loc["down", "aso_eps_min"]
    assert comp.loc["up", "verdict"] == "better" and comp.loc["down", "verdict"] == "worse"
    assert comp.loc["same", "verdict"] == "equivalent" and -0.01 < comp.loc["same", "tost_lo"] < comp.loc["same", "tost_hi"] < 0.01
    assert comp.loc["same", "seed_sd_from"] == "these seeds"


def test_a_one_seed_cell_borrows_the_seed_variance_of_the_study_and_the_line_says_so(tmp_path):
    """One-seed `solo` (vs a 3-seed baseline) has no seed variance of its own: it is pooled over the
    study's multi-seed comparison (`multi`, 3 seeds), and the line names that source; it is then
    judged (better), not provisional. With analysis.seed_sd the pilot is named instead."""
    runs = [run_of(tmp_path, "baseline", s, "baseline", "baseline", {}, {}, base_correct(s)) for s in SEEDS]
    runs += [run_of(tmp_path, "multi", s, "multi", "baseline", {}, {}, changed(s, 30, 25)) for s in SEEDS]
    runs.append(run_of(tmp_path, "solo", 1, "solo", "baseline", {}, {}, better(1)))
    study = collect(runs, "baseline")
    comp = compare_all(study).set_index("cell")
    assert comp.loc["solo", "seed_sd_from"] == "pooled over this study's 1 multi-seed comparison"
    assert comp.loc["solo", "seed_sd"] == pytest.approx(comp.loc["multi", "seed_sd"])
    assert comp.loc["solo", "verdict"] == "better"
    line = next(l for l in verdict_lines(study, compare_all(study)) if l.startswith("**solo**"))
    assert "from pooled over this study's 1 multi-seed comparison" in line
    piloted = compare_all(study, {"seed_sd": 0.02}).set_index("cell")
    assert piloted.loc["solo", "seed_sd_from"] == "analysis.seed_sd (a pilot)"
    # unpaired: the baseline's seed part is measured on its 3 seeds, solo's is half the pilot's Δ variance
    assert piloted.loc["solo", "seed_sd"] ** 2 >= 0.02 ** 2 / 2
