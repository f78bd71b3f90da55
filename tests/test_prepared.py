"""contrastlab.data.prepare and contrastlab.data.prepared: tokenised once, saved, loaded, subsampled."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from data_helpers import (SPLITS, WORDS, files_cfg, frame,  # noqa: E402
                          within_one_of_proportional, write)

from contrastlab.data.splits import DataError, load_splits, prepare  # noqa: E402
from contrastlab.data.prepared import Split, load_prepared  # noqa: E402

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
