"""CUDA before and after its initialisation, on a machine without a GPU: torch.cuda is replaced by a
stand-in that behaves like a GPU machine's before anything has touched CUDA (available, two
devices, not initialised; the peak-memory reset raises "Invalid device argument" until
initialisation, as torch's does). A job on a GPU initialises its device before asking it for
anything; a job on the CPU never initialises CUDA, which would take memory on GPUs other jobs hold."""
import os
import pytest
import torch

from contrastlab.operations import devices

from contrastlab.plan import layout

from contrastlab.training import train as train_module
from contrastlab.plan.config import CellConfig, DataConfig, RuntimeConfig
from contrastlab.data.splits import prepare
from contrastlab.operations.devices import init_device
from contrastlab.training.model import load_tokenizer
from contrastlab.operations.provenance import run_record

# torch.cuda calls that need, or create, an initialised CUDA context
STATEFUL = ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all", "get_device_name",
            "get_device_properties", "is_bf16_supported", "max_memory_allocated", "memory_allocated",
            "synchronize", "set_device", "init", "_lazy_init", "reset_peak_memory_stats", "current_device")


class UninitialisedCuda:
    """Records every stateful torch.cuda call as (name, args); `initialised` flips on init()."""

    def __init__(self, monkeypatch, n_devices: int = 2):
        self.calls: list[tuple] = []
        self.initialised = False
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n_devices)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: self.initialised)
        for name in STATEFUL:
            monkeypatch.setattr(torch.cuda, name, self._recorder(name))

    def _recorder(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, *map(str, args)))
            if name in ("init", "_lazy_init"):
                self.initialised = True
            elif name == "reset_peak_memory_stats" and not self.initialised:
                raise RuntimeError("Invalid device argument : did you call init?")  # torch's own message
            return torch.zeros(16, dtype=torch.uint8) if name == "get_rng_state" else None
        return call


def test_the_stand_in_fails_like_torch_when_peak_memory_is_reset_before_initialisation(monkeypatch):
    cuda = UninitialisedCuda(monkeypatch)
    with pytest.raises(RuntimeError, match="Invalid device argument"):
        torch.cuda.reset_peak_memory_stats(torch.device("cuda:0"))  # what every GPU job did (issue 22)


def test_init_device_makes_the_gpu_current_and_initialises_cuda_before_resetting_peak_memory(monkeypatch):
    cuda = UninitialisedCuda(monkeypatch)
    assert init_device(torch.device("cuda:1")) == torch.device("cuda:1")
    assert cuda.calls == [("set_device", "cuda:1"), ("init",), ("reset_peak_memory_stats", "cuda:1")]
    cpu = UninitialisedCuda(monkeypatch)
    assert init_device(torch.device("cpu")) == torch.device("cpu") and cpu.calls == []


def test_train_initialises_its_gpu_before_any_other_cuda_call(monkeypatch, tmp_path):
    cuda = UninitialisedCuda(monkeypatch)
    monkeypatch.setattr(train_module, "pick_device", lambda requested, jobs_per_gpu=1: torch.device("cuda:1"))

    class Stop(Exception):
        pass

    def load_prepared(path, *splits):  # the first thing after the device: stop there, nothing of the model can run here
        raise Stop

    monkeypatch.setattr(train_module, "load_prepared", load_prepared)
    cfg = CellConfig(cell="baseline", family="baseline")
    with pytest.raises(Stop):
        train_module.train(cfg, RuntimeConfig(device="auto"), tmp_path, {}, {})
    assert [c[0] for c in cuda.calls] == ["set_device", "init", "reset_peak_memory_stats"]


@pytest.fixture(scope="module")
def prepared(tiny_deberta_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "tiny-len32"
    prepare(DataConfig(source="embedded", max_train=96, max_eval=40), load_tokenizer(str(tiny_deberta_dir)), 32, out)
    return out


def test_a_job_that_falls_back_to_the_cpu_never_initialises_cuda(monkeypatch, tiny_deberta_dir, prepared, tmp_path):
    """Both GPUs are held, so `device: auto` runs on the CPU: two epochs (an epoch-end checkpoint
    with the RNG states), GradCache (which saves and restores the RNG around its re-run),
    evaluation and the provenance record."""
    cfg = CellConfig.model_validate({
        "cell": "scl", "family": "scl", "seed": 1, "loss": {"alpha": 0.2},
        "model": {"name": str(tiny_deberta_dir), "max_len": 32, "trainable_layers": 2},
        "train": {"epochs": 2, "batch_size": 16, "grad_accum": 2, "grad_cache": True}})
    monkeypatch.setattr(train_module, "CHECKPOINT_EVERY_S", 0.0)
    saved = []
    save = train_module.checkpoint.save
    monkeypatch.setattr(train_module.checkpoint, "save", lambda *a, **k: (saved.append(1), save(*a, **k)))
    cuda = UninitialisedCuda(monkeypatch)
    monkeypatch.setenv("CONTRASTLAB_GPU_LOCK_DIR", str(tmp_path / "locks"))
    held = [devices.pick_device("auto") for _ in range(2)]  # other jobs hold both GPUs
    assert held == [torch.device("cuda:0"), torch.device("cuda:1")]
    out = {k: tmp_path / v for k, v in layout.STAGE_FILES["train"].items()}
    state = {k: tmp_path / v for k, v in layout.TRAIN_STATE.items()}
    try:
        metrics = train_module.train(cfg, RuntimeConfig(device="auto", threads=1), prepared, out, state)
    finally:  # a job's exit releases its locks; this test's process must do it itself
        for path in list(devices._held):
            os.close(devices._held.pop(path))
    assert saved and metrics["grad_cache"] and metrics["device"] == "cpu"
    assert cuda.calls == [] and not cuda.initialised
    run_record(torch.device("cpu"), "fp32", RuntimeConfig())
    assert cuda.calls == []


def test_a_gpu_job_asks_only_its_own_device_for_rng_state(monkeypatch):
    from contrastlab.objectives.contrastive import _rng_state, _set_rng_state

    cuda = UninitialisedCuda(monkeypatch)
    state = _rng_state(torch.device("cuda:1"))
    _set_rng_state(state, torch.device("cuda:1"))
    assert [(c[0], c[-1]) for c in cuda.calls] == [("get_rng_state", "cuda:1"), ("set_rng_state", "cuda:1")]
