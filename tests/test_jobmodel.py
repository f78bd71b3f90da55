"""contrastlab.training.jobmodel: the one way a job builds its model, and the checks only a job can make."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from contrastlab.plan.config import CellConfig, ConfigError, RuntimeConfig
from contrastlab.training.jobmodel import job_model
from contrastlab.training.model import MODEL_PREFIX, trainable_state_dict

CPU = torch.device("cpu")
RUNTIME = RuntimeConfig(device="cpu", allow_slow_precision=True)  # bf16 runs on any CPU here


def cell(model_dir, seed=1, precision="fp32", **model):
    return CellConfig.model_validate({"cell": "c", "family": "baseline", "seed": seed, "train": {"precision": precision},
                                      "model": {"name": str(model_dir), "max_len": 32, "trainable_layers": 2, **model}})


def test_too_many_trainable_layers_stops_the_job_in_one_line_naming_the_cell_and_key(tiny_deberta_dir):
    with pytest.raises(ConfigError, match=r"^cell c: model.trainable_layers = 9, but .* has 4 encoder layers$"):
        job_model(cell(tiny_deberta_dir, trainable_layers=9), RUNTIME, CPU, 2)


def test_a_probe_layer_the_model_lacks_stops_the_embed_job_naming_the_key(tiny_deberta_dir):
    with pytest.raises(ConfigError, match=r"^cell c: probe.layers: "):
        job_model(cell(tiny_deberta_dir), RUNTIME, CPU, 2, probe_layers=[7])


def test_the_head_is_the_seeds_and_the_cells_layers_train(tiny_deberta_dir):
    a, b = (job_model(cell(tiny_deberta_dir, seed=s), RUNTIME, CPU, 3).model for s in (1, 1))
    other = job_model(cell(tiny_deberta_dir, seed=2), RUNTIME, CPU, 3).model
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, other.classifier.weight)
    trained = {n.split(".")[2] for n in trainable_state_dict(a.encoder) if n.startswith("encoder.layer.")}
    assert trained == {"2", "3"}  # the top 2 of 4


def test_bf16_stores_frozen_linears_in_bf16_and_an_embed_model_is_all_frozen(tiny_deberta_dir, tmp_path: Path):
    built = job_model(cell(tiny_deberta_dir, precision="bf16"), RUNTIME, CPU, 2)
    assert built.precision.name == "bf16"
    dtypes = {m.weight.dtype for m in built.model.modules() if isinstance(m, torch.nn.Linear)
              and not m.weight.requires_grad}
    assert dtypes == {torch.bfloat16}
    assert built.model.classifier.weight.dtype == torch.float32  # what trains stays fp32
    weights = tmp_path / "weights.safetensors"
    save_file({MODEL_PREFIX + k: v.float() for k, v in trainable_state_dict(built.model).items()}, str(weights))
    embedded = job_model(cell(tiny_deberta_dir, precision="bf16"), RUNTIME, CPU, 2, weights=weights).model
    assert not any(p.requires_grad for p in embedded.parameters())
    # the trained head loaded, and (frozen now, like every linear) stored in bf16
    assert torch.equal(embedded.classifier.weight, built.model.classifier.weight.to(torch.bfloat16))


def test_the_package_holds_no_test_fault_injection():
    src = Path(__file__).resolve().parent.parent / "src"
    assert not [p for p in src.rglob("*.py") if "CONTRASTLAB_TEST_" in p.read_text()]
