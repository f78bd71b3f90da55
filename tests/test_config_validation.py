"""A bad config stops at DAG build, before any job, with a message naming the key."""
import pytest

from workflow_helpers import snakemake, write_config


@pytest.mark.parametrize("override, message", [
    ({"train.lr_top": 0.0}, "lr_top"),
    ({"train.learning_rate": 1e-3}, "learning_rate"),
    ({"train.epochs": "three"}, "epochs"),
    ({"model.trainable_layers": 7}, "model.trainable_layers = 7"),
    ({"data.source": "files", "data.files": {"train": "/nonexistent/reviews.csv"}}, "data.files.train"),
    ({"experiments.baseline.loss": {"alpha": 0.3}}, "loss.alpha"),
])
def test_bad_config_stops_before_any_job_naming_the_key(override, message, tiny_deberta_dir, tmp_path):
    config = write_config(tmp_path / "bad.yaml", tiny_deberta_dir, **override)
    out = snakemake(tmp_path, config, "-n", check=False)
    assert out.returncode != 0
    assert message in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()
