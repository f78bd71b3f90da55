"""The test suite's tiny randomly initialised DeBERTa-v2 (4 layers, 32 wide) with a SentencePiece
tokenizer trained on the fly: contrastlab.training.random_model, which the GPU check uses at full size."""
from __future__ import annotations

from pathlib import Path

from contrastlab.training.random_model import embedded_corpus_texts, make_random_deberta

__all__ = ["embedded_corpus_texts", "make_tiny_deberta"]


def make_tiny_deberta(out_dir: Path) -> Path:
    return make_random_deberta(out_dir, "tiny")
