"""tools/gpu-check's CPU rehearsal (--dry): a tiny random DeBERTa-v2, one cell of every family
through Snakemake and the aggregate, an out-of-memory error simulated at the whole step's
micro-batch and retried at half, and the step timed in every precision. What the GPU run checks
on a GPU, this checks on the CPU; it cannot show that a GPU works."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from contrastlab.objectives.families import NAMES
from workflow_helpers import REPO, local_env

pytestmark = pytest.mark.e2e


def test_the_gpu_check_rehearses_every_family_an_oom_retry_and_the_step_timing_on_the_cpu(tmp_path):
    out = tmp_path / "gpu-check"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu-check"), "--dry", "--out", str(out)],
                          capture_output=True, text=True, env=local_env())
    report = (out / "report.md").read_text() if (out / "report.md").exists() else proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-4000:]
    assert report.count("PASS ") == 3 and "FAIL" not in report
    status = pd.read_csv(out / "study/results/status.csv")
    assert sorted(status["cell"]) == sorted(NAMES) and (status["state"] == "done").all()
    assert (out / "study/results/tables/headline.md").exists()
    oom = pd.read_csv(out / "oom/results/status.csv").iloc[0]
    assert (oom["state"], oom["first_cause"], oom["attempts"], oom["micro_batch"]) == ("done", "GPU out of memory", 2, 16)
    timing = json.loads((out / "timing.json").read_text())
    assert [(r["label"], r["micro_batch"]) for r in timing["rows"]] == [
        (p, m) for p in ("fp32, TF32 off", "fp32, TF32 on", "bf16", "fp16") for m in (16, 32)]
    assert timing["flop_per_token"] > 0 and all(r["samples_per_s"] > 0 for r in timing["rows"])
    table = (out / "timing.md").read_text()
    # fused vs foreach AdamW on any device; pinned vs pageable copies only where there is a GPU
    assert [v["variant"].split(":")[0] for v in timing["variants"]][:2] == ["default", "AdamW foreach (not fused)"]
    assert table.count("\n| ") == 1 + 8 + 1 + len(timing["variants"])  # each table's header and rows
