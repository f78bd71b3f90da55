"""A randomly initialised DeBERTa-v2 and a SentencePiece tokenizer trained on the embedded corpus,
made offline in seconds: the test suite's tiny model and the GPU check's DeBERTa-v3-base-shaped
one (tools/gpu-check). Both go through the real `DebertaV2Tokenizer` and `DebertaV2Model` code
(relative attention included) and load like any local model directory (`model.name: <dir>`).

The tokenizer's vocabulary is what the corpus supports (a few hundred to a few thousand pieces);
the model's embedding matrix has `vocab_size` rows all the same, so that a model of DeBERTa-v3-base's
shapes has its 184M parameters (the rows past the tokenizer's are never looked up).
"""
from __future__ import annotations

import bz2
from pathlib import Path

# DebertaV2Config fields; deberta-v3-base: the values of microsoft/deberta-v3-base's config.json
SHAPES = {
    "tiny": dict(vocab_size=0, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                 position_buckets=32, position_biased_input=True),
    "deberta-v3-base": dict(vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072, position_buckets=256, norm_rel_ebd="layer_norm",
                            share_att_key=True, position_biased_input=False, layer_norm_eps=1e-7),
}
TOKENIZER_VOCAB = {"tiny": 600, "deberta-v3-base": 8000}


def embedded_corpus_texts(n: int = 2000) -> list[str]:
    """Review texts of the embedded Rotten Tomatoes corpus (plot synopses left out), first `n`."""
    import pandas as pd

    from contrastlab.data.sources import embedded_path

    with bz2.open(embedded_path(), "rt") as f:
        df = pd.read_csv(f)
    return df.loc[df["category"] != "plot", "text"].dropna().drop_duplicates().head(n).tolist()


def train_tokenizer(out_dir: Path, texts: list[str], vocab_size: int, exact: bool = True):
    """A unigram SentencePiece model on `texts`, saved in `out_dir` as a DebertaV2Tokenizer; not
    `exact`: up to `vocab_size` pieces, as many as the texts support."""
    import sentencepiece as spm
    from transformers import DebertaV2Tokenizer

    corpus = out_dir / "corpus.txt"
    corpus.write_text("\n".join(texts))
    # "spm.model" is the file name DebertaV2Tokenizer.from_pretrained converts from (sentencepiece + protobuf)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out_dir / "spm"), vocab_size=vocab_size, model_type="unigram",
        pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]", bos_id=-1, eos_id=-1,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2, hard_vocab_limit=exact)
    (out_dir / "spm.vocab").unlink()
    corpus.unlink()
    tok = DebertaV2Tokenizer.from_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return tok


def make_random_deberta(out_dir: str | Path, shape: str = "tiny", texts: list[str] | None = None,
                        seed: int = 0) -> Path:
    """Write a random-init DeBERTa-v2 of `shape` (SHAPES) and its tokenizer to `out_dir`; -> out_dir."""
    import torch
    from transformers import DebertaV2Config, DebertaV2Model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if texts is None:
        texts = embedded_corpus_texts(2000 if shape == "tiny" else 100_000)
    tok = train_tokenizer(out_dir, texts, TOKENIZER_VOCAB[shape], exact=shape == "tiny")
    fields = dict(SHAPES[shape])
    fields["vocab_size"] = max(fields["vocab_size"], len(tok))
    cfg = DebertaV2Config(**fields, max_position_embeddings=512, relative_attention=True,
                          pos_att_type=["p2c", "c2p"], max_relative_positions=-1, pad_token_id=tok.pad_token_id,
                          hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, type_vocab_size=0)
    torch.manual_seed(seed)
    DebertaV2Model(cfg).save_pretrained(out_dir)
    return out_dir
