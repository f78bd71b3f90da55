"""environment.yml (conda users, `--use-conda`) pins exactly what requirements.txt (make) pins."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_environment_yml_and_requirements_txt_pin_the_same_packages():
    reqs = {line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) == reqs
    assert "torch==2.13.0" in reqs
