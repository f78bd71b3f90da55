"""Which precision a job runs: `train.precision: auto` resolved per device, an explicit precision
the device only emulates stopped at the start (one line), the per-host cache of the CPU probe,
and the step-rate line every training log shows within its first steps.

The CPU's answer is monkeypatched where a test is about the decision; the tests that use the real
probe hold on any CPU (the AVX2 one forces oneDNN's fallback through its environment variable)."""
import json
import logging
import os
import subprocess
import sys

import pytest
import torch

from contrastlab.plan import layout

from contrastlab.training import native
from contrastlab.plan.config import CellConfig, DataConfig, RuntimeConfig
from contrastlab.data.splits import prepare
from contrastlab.training.model import load_tokenizer
from contrastlab.training.precision import PrecisionUnsupported, resolve, setup_precision
from contrastlab.training.train import train

CPU = torch.device("cpu")


def cpu_says(monkeypatch, flag: bool, slowdown: float):
    """The CPU's oneDNN flag and measured slowdown (both dtypes), without measuring."""
    monkeypatch.setattr(native, "onednn_flag", lambda name: flag)
    monkeypatch.setattr(native, "cached_slowdown", lambda name: slowdown)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# ---- the decision --------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,slowdown,expected", [(True, 0.3, "bf16"), (False, 16.0, "fp32"),
                                                    (True, 1.4, "fp32")])  # a flag the measurement contradicts
def test_auto_on_a_cpu_is_bf16_only_where_the_flag_and_the_measurement_agree(monkeypatch, flag, slowdown, expected):
    cpu_says(monkeypatch, flag, slowdown)
    prec = setup_precision("auto", CPU)
    assert (prec.name, prec.configured, prec.scaler) == (expected, "auto", None)
    assert resolve("fp32", CPU) == "fp32" and resolve("bf16", CPU) == "bf16"  # explicit values stay


@pytest.mark.parametrize("capability,expected", [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 0), "fp16"), ((6, 1), "fp16")])
def test_auto_on_a_gpu_is_bf16_from_ampere_and_fp16_before(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    assert resolve("auto", torch.device("cuda")) == expected


def test_explicit_bf16_that_the_cpu_only_emulates_stops_with_one_line_naming_device_slowdown_and_fix(monkeypatch):
    cpu_says(monkeypatch, False, 16.04)
    with pytest.raises(PrecisionUnsupported) as err:
        setup_precision("bf16", CPU)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("train.precision = bf16, but cpu (") and native.cpu_name() in msg
    assert "16.0x fp32's time" in msg
    assert "train.precision: auto (fp32 here) or fp32" in msg and "runtime.allow_slow_precision: true" in msg
    assert setup_precision("bf16", CPU, allow_slow=True).name == "bf16"  # the override runs it


def test_explicit_fp16_on_a_cpu_that_emulates_it_stops_and_runs_where_it_is_native(monkeypatch):
    cpu_says(monkeypatch, False, 20.0)
    with pytest.raises(PrecisionUnsupported, match=r"^train\.precision = fp16, but cpu .*only emulates it"):
        setup_precision("fp16", CPU)
    cpu_says(monkeypatch, True, 0.5)  # e.g. AMX-FP16
    assert setup_precision("fp16", CPU).scaler is not None


def test_explicit_bf16_on_a_gpu_before_ampere_stops_unless_allowed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    with pytest.raises(PrecisionUnsupported, match=r"cuda \(Tesla V100\) only emulates it \(compute capability 7\.0.*"
                                                    r"auto \(fp16 here\) or fp32"):
        setup_precision("bf16", torch.device("cuda"))


# ---- the probe and its cache ----------------------------------------------------------------------

def test_the_cpu_probe_is_measured_once_per_host_and_again_when_an_isa_variable_changes(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(native, "measure_slowdown", lambda name: calls.append(name) or 12.5)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert native.cached_slowdown("bf16") == native.cached_slowdown("bf16") == 12.5
    assert calls == ["bf16"]
    cache = json.loads(native.cache_path().read_text())
    assert native.cache_path().is_relative_to(tmp_path) and cache[native.cache_key()] == {"bf16": 12.5}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    native.cached_slowdown("bf16")
    assert calls == ["bf16", "bf16"] and len(json.loads(native.cache_path().read_text())) == 2


def test_forcing_onednn_to_avx2_makes_bf16_emulated_and_auto_pick_fp32(tmp_path):
    """The real probe in a fresh process (the variables are read when torch loads), on any CPU:
    without oneDNN's bf16 kernels torch's fallback is several times slower than fp32."""
    code = """if True:
        import json, torch
        from contrastlab.training import native
        from contrastlab.training import precision
        cpu = torch.device('cpu')
        s = native.support('bf16', cpu)
        try:
            precision.setup_precision('bf16', cpu)
            stop = None
        except precision.PrecisionUnsupported as e:
            stop = str(e)
        print(json.dumps([native.onednn_flag('bf16'), s.native, s.slowdown, precision.resolve('auto', cpu), stop]))"""
    env = {**os.environ, **native.AVX2_ONLY, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    flag, is_native, slowdown, auto, stop = json.loads(out.stdout.strip().splitlines()[-1])
    assert (flag, is_native, auto) == (False, False, "fp32")
    assert slowdown > 2.0, slowdown
    assert stop.startswith("train.precision = bf16, but cpu (") and f"measured {slowdown:.1f}x fp32's time" in stop


@pytest.mark.skipif(not native.onednn_flag("bf16"), reason="this CPU has no native bf16 (oneDNN's check is False): "
                    "auto picks fp32 here, which test_forcing_onednn_to_avx2... covers")
def test_auto_picks_bf16_on_this_cpu_whose_bf16_is_native():
    assert native.measure_slowdown("bf16") < 1.0
    assert resolve("auto", CPU) == "bf16"


# ---- in a training job ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prepared(tiny_deberta_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "tiny-len32"
    prepare(DataConfig(source="embedded", max_train=200, max_eval=60), load_tokenizer(str(tiny_deberta_dir)), 32, out)
    return out


def run_cell(tiny_deberta_dir, prepared, d, precision):
    cfg = CellConfig.model_validate({"cell": "baseline", "family": "baseline", "seed": 3,
                                     "model": {"name": str(tiny_deberta_dir), "max_len": 32, "trainable_layers": 2},
                                     "train": {"epochs": 1, "batch_size": 16, "grad_accum": 2, "precision": precision}})
    out = {k: d / v for k, v in layout.STAGE_FILES["train"].items()}
    state = {k: d / v for k, v in layout.TRAIN_STATE.items()}
    return train(cfg, RuntimeConfig(device="cpu", threads=1, log_every=100), prepared, out, state)


def test_an_auto_cell_records_what_it_ran_in_and_logs_its_step_rate_within_its_first_steps(
        tiny_deberta_dir, prepared, tmp_path, monkeypatch, caplog):
    cpu_says(monkeypatch, False, 16.0)
    with caplog.at_level(logging.INFO, logger="contrastlab.training.train"):
        metrics = run_cell(tiny_deberta_dir, prepared, tmp_path, "auto")
    assert metrics["provenance"]["precision"] == "fp32" and metrics["provenance"]["precision_configured"] == "auto"
    lines = [r.getMessage() for r in caplog.records]
    rate = [i for i, l in enumerate(lines) if l.startswith("step rate over the first 5 steps: ")]
    assert len(rate) == 1 and "s/step" in lines[rate[0]] and "examples/s, in fp32 (from auto)" in lines[rate[0]]
    validation = next(i for i, l in enumerate(lines) if l.startswith("validation after step 7"))
    assert rate[0] < validation  # before the first progress line of the 7-step epoch


def test_an_explicit_bf16_cell_on_a_cpu_that_emulates_it_stops_before_any_step(
        tiny_deberta_dir, prepared, tmp_path, monkeypatch):
    cpu_says(monkeypatch, False, 16.0)
    with pytest.raises(PrecisionUnsupported, match="only emulates it"):
        run_cell(tiny_deberta_dir, prepared, tmp_path, "bf16")
    assert not (tmp_path / layout.STAGE_FILES["train"]["history"]).exists()
