"""The second batch of bad inputs (issue 23, item 5), classes 1-3: labels kept exactly as written,
files that pandas would read wrongly in silence, and splits and caps that would change a study
without a word. Each message names the file, the row or line, and the value."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
import re  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from data_helpers import files_cfg, frame, write  # noqa: E402

from contrastlab.plan.config import ConfigError, DataConfig, StudyConfig, validate  # noqa: E402
from contrastlab.data.splits import DataError, load_splits  # noqa: E402
from contrastlab.data.preps import draw_problem  # noqa: E402


def _error(cfg) -> str:
    with pytest.raises(DataError) as err:
        load_splits(cfg)
    return str(err.value)


# ---- class 1: labels are kept as written -----------------------------------------------------

NAMES = ("3.1", "3.10", "1_2", "123456789012345678", "123456789012345679", "007")


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_label_names_that_look_like_numbers_stay_distinct_and_as_written(tmp_path, ext):
    cfg = files_cfg({"train": write(frame(20, classes=NAMES), tmp_path / f"d{ext}")})
    frames, names, _ = load_splits(cfg)
    assert names == sorted(NAMES)  # "1_2" is not a number, so the names sort as text
    assert sum(len(f) for f in frames.values()) == 20 * len(NAMES)  # no two classes merged


def test_numeric_label_names_sort_as_numbers_with_ties_by_text(tmp_path):
    cfg = files_cfg({"train": write(frame(10, classes=("10", "3.10", "2", "3.1")), tmp_path / "d.csv")})
    assert load_splits(cfg)[1] == ["2", "3.1", "3.10", "10"]


def test_integer_ids_in_json_keep_every_digit(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"review": f"text {i} {c}", "sentiment": c} for i in range(10) for c in (123456789012345678, 123456789012345679)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert load_splits(files_cfg({"train": str(path)}))[1] == ["123456789012345678", "123456789012345679"]


@pytest.mark.parametrize("near", [("good ", "good"), ("Positive", "positive"), ("café", "cafe\u0301")])
def test_near_duplicate_labels_stop_naming_both_the_file_and_rows(tmp_path, near):
    df = frame(10, classes=("bad", near[1]))
    df.loc[7, "sentiment"] = near[0]
    msg = _error(files_cfg({"train": write(df, tmp_path / "d.csv")}))
    assert repr(near[0]) in msg and repr(near[1]) in msg and "d.csv" in msg and "row 8" in msg, msg
    assert "differ only in case or spaces" in msg and "data.labels" in msg


def test_near_duplicate_labels_declared_in_labels_are_two_classes(tmp_path):
    df = frame(10, classes=("Positive", "positive", "neg"))
    _, names, _ = load_splits(files_cfg({"train": write(df, tmp_path / "d.csv")},
                                        labels=["neg", "Positive", "positive"]))
    assert names == ["neg", "Positive", "positive"]


@pytest.mark.parametrize("value, kind", [([1, 2], "list"), ({"a": 1}, "dict")])
def test_a_label_that_is_not_one_value_is_refused_naming_the_row(tmp_path, value, kind):
    df = frame(10).astype(object)
    df.at[3, "sentiment"] = value
    msg = _error(files_cfg({"train": write(df, tmp_path / "d.jsonl")}))
    assert "d.jsonl" in msg and "'sentiment'" in msg and "row 4" in msg and kind in msg and repr(value) in msg, msg


# ---- class 2: files read wrongly in silence ---------------------------------------------------

def _lines(n=50, sep="\t"):
    return ["review" + sep + "sentiment"] + [f"review number {i}{sep}{('neg', 'pos')[i % 2]}" for i in range(n)]


@pytest.mark.parametrize("ext, sep", [(".tsv", "\t"), (".csv", ",")])
def test_a_stray_quote_that_would_merge_rows_stops_naming_the_lines(tmp_path, ext, sep):
    lines = _lines(sep=sep)
    lines[10] = f'"A stray quote opens this review{sep}pos'
    lines[30] = f'and "one closes it here{sep}neg'
    path = tmp_path / f"d{ext}"
    path.write_text("\n".join(lines) + "\n")
    assert len(pd.read_csv(path, sep=sep)) < 50  # what pandas alone reads: rows merged, and no error
    msg = _error(files_cfg({"train": str(path)}))
    assert f"d{ext}, lines 11-31: a quote" in msg, msg


def test_a_tsv_quote_closed_right_before_a_tab_still_stops(tmp_path):
    lines = _lines()
    lines[10] = '"A stray quote opens this review\tpos'
    lines[30] = 'it closes at the end "\tneg'  # the field closes cleanly: only its tabs and line breaks tell
    path = tmp_path / "d.tsv"
    path.write_text("\n".join(lines) + "\n")
    assert "d.tsv, lines 11-31" in _error(files_cfg({"train": str(path)}))


@pytest.mark.parametrize("ext", [".csv", ".tsv"])
def test_quoted_fields_as_pandas_writes_them_are_read_back_unchanged(tmp_path, ext):
    df = frame(10)
    df.loc[0, "review"] = 'she said "fine", then\nleft\tearly'
    df.loc[1, "review"] = '"quoted" from the start'
    df.loc[2, "review"] = 'a 5" screen'
    frames, _, _ = load_splits(files_cfg({"train": write(df, tmp_path / f"d{ext}")}))
    texts = set(pd.concat(frames.values())["text"])
    assert set(df["review"][:3]) <= texts


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_windows_line_ends_and_a_byte_order_mark_read_like_plain_files(tmp_path, ext):
    plain = write(frame(10), tmp_path / f"plain{ext}")
    windows = tmp_path / f"windows{ext}"
    windows.write_bytes(b"\xef\xbb\xbf" + Path(plain).read_bytes().replace(b"\n", b"\r\n"))
    a, b = load_splits(files_cfg({"train": plain})), load_splits(files_cfg({"train": str(windows)}))
    assert a[1] == b[1] and all(a[0][s]["text"].tolist() == b[0][s]["text"].tolist() for s in a[0])


def test_a_column_name_written_twice_stops_naming_it_and_its_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("review,sentiment,sentiment\n" + "".join(f"text {i},pos,neg\n" for i in range(20)))
    msg = _error(files_cfg({"train": str(path)}))
    assert "d.csv: the column name 'sentiment' appears 2 times (columns 2, 3)" in msg, msg


def test_a_json_key_written_twice_in_a_line_stops_naming_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"review": "a", "sentiment": "pos"}\n{"review": "b", "sentiment": "pos", "sentiment": "neg"}\n')
    assert "d.jsonl, line 2: key 'sentiment' appears twice" in _error(files_cfg({"train": str(path)}))


def _zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return str(path)


def test_a_zip_of_two_files_stops_naming_both(tmp_path):
    csv = frame(10).to_csv(index=False)
    path = _zip(tmp_path / "d.csv.zip", {"train.csv": csv, "test.csv": csv})
    msg = _error(files_cfg({"train": path}))
    assert "d.csv.zip: the zip holds 2 files: 'train.csv', 'test.csv'" in msg, msg


def test_a_zip_whose_first_entry_is_a_folder_reads_its_one_file_in_the_members_format(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.mkdir("data") if hasattr(z, "mkdir") else z.writestr("data/", "")
        z.writestr("data/train.jsonl", frame(10).to_json(orient="records", lines=True))
        z.writestr("__MACOSX/data/._train.jsonl", "junk")
    frames, names, _ = load_splits(files_cfg({"train": str(tmp_path / "d.zip")}))
    assert names == ["neg", "pos"] and sum(map(len, frames.values())) == 20


@pytest.mark.parametrize("ext", [".gz", ".bz2", ".xz", ".zip"])
def test_a_plain_csv_named_as_compressed_says_so(tmp_path, ext):
    path = tmp_path / f"d.csv{ext}"
    path.write_text(frame(10).to_csv(index=False))
    msg = _error(files_cfg({"train": str(path)}))
    assert f"d.csv{ext}: not" in msg and f"rename it without {ext}" in msg and len(msg) < 300, msg


@pytest.mark.parametrize("orient", ["columns", "index", "split", "table"])
def test_pandas_default_json_layouts_say_write_records_in_one_short_line(tmp_path, orient):
    path = tmp_path / "d.json"
    frame(200).to_json(path, orient=orient)
    msg = _error(files_cfg({"train": str(path)}))
    assert "write records or JSONL" in msg and len(msg) < 400 and "\n" not in msg, msg


def test_a_json_list_of_lists_says_write_records(tmp_path):
    path = tmp_path / "d.json"
    frame(10).to_json(path, orient="values")
    assert "d.json: item 1 of the list is a list, not a record" in _error(files_cfg({"train": str(path)}))


def test_val_and_validation_both_given_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data: data.files names the val split twice \(val, validation\)"):
        validate(StudyConfig, {"data": {"source": "files", "files": {"train": "a.csv", "val": "b.csv",
                                                                      "validation": "c.csv"}},
                               "experiments": {"baseline": {}}}, "s.yaml")


def test_a_tilde_in_a_data_path_is_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(frame(10), tmp_path / "d.csv")
    cfg = files_cfg({"train": "~/d.csv"})
    assert cfg.files["train"] == str(tmp_path / "d.csv")
    assert len(load_splits(cfg)[1]) == 2


def test_a_column_name_with_a_stray_space_is_visible_in_the_message(tmp_path):
    msg = _error(files_cfg({"train": write(frame(10).rename(columns={"review": "review "}), tmp_path / "d.csv")}))
    assert "no column 'review' (columns: 'review ', 'sentiment')" in msg, msg


# ---- class 3: splits and caps ------------------------------------------------------------------

def _plan_error(**data) -> str:
    from contrastlab.plan.study import plan
    with pytest.raises(ConfigError) as err:
        plan({"data": data, "model": {"max_len": 32}, "experiments": {"baseline": {}}}, "s.yaml")
    return str(err.value)


def test_max_train_below_the_few_shot_set_is_a_config_error_with_the_numbers():
    assert _plan_error(labels=["neg", "pos"], few_shot_n=20, max_train=30).startswith(
        "s.yaml: cell baseline: data.max_train = 30 would cut the few-shot train set (few_shot_n = 20 per class x 2 "
        "classes = 40 rows)")


def test_max_train_below_the_few_shot_set_of_three_classes_stops_prepare(tmp_path):
    cfg = files_cfg({"train": write(frame(40, classes=("a", "b", "c")), tmp_path / "d.csv")}, few_shot_n=20, max_train=50)
    assert "d.csv: data.max_train = 50 would cut the few-shot train set (few_shot_n = 20 per class x 3 classes = 60 rows)" \
        in _error(cfg)


def test_a_noise_rate_that_flips_no_label_stops_with_the_train_size(tmp_path):
    cfg = files_cfg({"train": write(frame(40), tmp_path / "d.csv")}, few_shot_n=10, label_noise=0.02)
    msg = _error(cfg)
    assert "data.label_noise = 0.02 of the 20 train examples flips round(0.4) = 0 labels" in msg, msg
    cfg = files_cfg({"train": write(frame(40), tmp_path / "d.csv")}, few_shot_n=10, label_noise=0.05)
    assert load_splits(cfg)[2]["label_noise"]["flipped"] == 1


def test_label_noise_that_inverts_the_labels_is_refused_at_config_check_when_the_classes_are_declared():
    msg = _plan_error(labels=["neg", "pos"], label_noise=0.6)
    assert msg.startswith("s.yaml: cell baseline: data.label_noise = 0.6 with 2 classes leaves a row's true label "
                          "(40%) no more likely than each wrong one (60%)") and "less than 0.5" in msg, msg
    assert draw_problem(DataConfig(labels=["a", "b", "c"], label_noise=0.6), 3) is None  # 40% true, 30% each wrong


def test_label_noise_that_inverts_binary_labels_stops_prepare_when_undeclared(tmp_path):
    cfg = files_cfg({"train": write(frame(20), tmp_path / "d.csv")}, label_noise=0.5)
    assert "d.csv: data.label_noise = 0.5 with 2 classes" in _error(cfg)


@pytest.mark.parametrize("data, expected", [
    ({"source": "embedded", "label_noise": 0.6}, "cell baseline: data.label_noise = 0.6 with 2 classes"),
    ({"few_shot_n": 20, "max_train": 50}, "cell baseline: data.max_train = 50 would cut the few-shot train set "
                                          "(few_shot_n = 20 per class x 3 classes = 60 rows)")])
def test_limits_that_need_the_class_count_stop_the_config_check_when_labels_are_undeclared(tmp_path, data, expected):
    from contrastlab.plan.study import plan
    files = {"source": "files", "files": {"train": write(frame(40, classes=("a", "b", "c")), tmp_path / "d.csv")},
             "text_column": "review", "label_column": "sentiment"}
    study = {"data": {**files, **data}, "model": {"max_len": 32}, "experiments": {"baseline": {}}}
    with pytest.raises(ConfigError, match=re.escape(f"s.yaml: {expected}")):
        plan(study, "s.yaml")


def test_a_class_count_message_counts_the_rows_before_the_test_split_took_one(tmp_path):
    df = pd.concat([frame(20), frame(2, classes=("meh",))], ignore_index=True)
    msg = _error(files_cfg({"train": write(df, tmp_path / "d.csv")}, test_fraction=0.5))
    assert "class 'meh' has 2 rows, of which the test and validation splits took 1: 1 left" in msg, msg
    assert "validation split needs at least 2 per class" in msg
