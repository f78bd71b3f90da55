"""contrastlab.data.splits: every bad input (columns, labels, encodings, JSON, duplicates) is named by file and row."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
import logging  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from data_helpers import files_cfg, frame, write  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from contrastlab.plan.config import ConfigError, DataConfig, validate  # noqa: E402
from contrastlab.data.splits import DataError, load_splits  # noqa: E402

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
    with pytest.raises(DataError, match=r"cols\.tsv: no column 'review' \(columns: 'body', 'sentiment'\); name the file's column in data.text_column"):
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
    with caplog.at_level(logging.WARNING, logger="contrastlab.data.splits"):
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
    with caplog.at_level(logging.WARNING, logger="contrastlab.data.splits"):
        data, _, summary = load_splits(files_cfg({"train": path}, duplicates="keep"))
    assert sorted(r for d in data.values() for r in d["row"]) == list(range(1, 44))
    assert summary["duplicates"]["train"] == {"repeated_rows": 2, "conflicting_rows": 2}
    assert any("kept" in r.getMessage() for r in caplog.records)
