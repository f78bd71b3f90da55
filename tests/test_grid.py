"""Grid expansion: experiments x sweeps x seeds -> uniquely named cells with resolved configs."""
import pytest

from contrastlab.grid import expand_grid

BASE = {"model": {"name": "embedded", "max_len": 64}, "train": {"epochs": 1}, "seeds": [1, 2],
        "runtime": {"device": "cpu", "log_every": 5, "threads": 2}}


def grid(experiments, **extra):
    return expand_grid({**BASE, **extra, "experiments": experiments})


def test_sweep_is_a_cartesian_product_named_by_its_values_and_run_per_seed():
    cells = grid({"baseline": {}, "wide": {"family": "baseline", "sweep": {"label_smoothing": [0.0, 0.1],
                                                                             "train.lr_head": [1e-4, 1e-3]}}})
    names = sorted({c.name for c in cells})
    assert names == ["baseline", "wide_label_smoothing0.0_lr_head0.0001", "wide_label_smoothing0.0_lr_head0.001",
                     "wide_label_smoothing0.1_lr_head0.0001", "wide_label_smoothing0.1_lr_head0.001"]
    assert len(cells) == 5 * 2
    c = next(c for c in cells if c.name == "wide_label_smoothing0.1_lr_head0.001" and c.seed == 2)
    assert c.config["loss"] == {"label_smoothing": 0.1}
    assert c.config["train"]["lr_head"] == 0.001 and c.config["train"]["epochs"] == 1
    assert c.config["seed"] == 2 and c.config["device"] == "cpu" and c.config["log_every"] == 5


def test_experiment_overrides_merge_into_the_defaults():
    (c, _) = grid({"short": {"family": "baseline", "model": {"max_len": 32}}})
    assert c.config["model"]["max_len"] == 32 and c.config["model"]["name"] == "embedded"


def test_unknown_experiment_key_is_named():
    with pytest.raises(ValueError, match="experiments.baseline.lossy"):
        grid({"baseline": {"lossy": {}}})


def test_unknown_loss_param_is_named():
    with pytest.raises(ValueError, match="loss.alpha"):
        grid({"baseline": {"loss": {"alpha": 0.2}}})


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        grid({"x": {"family": "nope"}})


def test_colliding_cell_names_are_an_error():
    with pytest.raises(ValueError, match="same cell twice"):
        grid({"b": {"family": "baseline", "sweep": {"label_smoothing": [0.1, 0.1]}}})
