"""tools/config_flow.py: a cell's config flows down through a training job (issue 21)."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_training_jobs_config_flows_down_a_tree_of_modules_without_the_dag_build_checks():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(REPO / "tools" / "config_flow.py"), "--json"], capture_output=True,
                         text=True, env=env, check=True).stdout
    flow = json.loads(out)
    assert flow["entered_from_several"] == {}  # every module the config enters, it enters from one module
    # the cost metrics (passes and FLOPs of what trained) are computed from the config after training
    assert flow["train_hands_to"] == ["operations.provenance", "plan.cost", "training.jobmodel", "training.optim"]
    assert "plan.validate" not in flow["path"]
    assert {"training.jobmodel", "plan.fits", "training.model", "training.precision"} <= set(flow["path"])
