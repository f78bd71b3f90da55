"""Grid expansion: experiments x sweeps x seeds -> uniquely named cells with resolved configs."""
import pytest

from contrastlab.plan.config import ConfigError, StudyConfig
from contrastlab.plan.grid import expand_grid

BASE = {"data": {"source": "embedded"}, "model": {"name": "embedded", "max_len": 64}, "train": {"epochs": 1},
        "seeds": [1, 2], "runtime": {"device": "cpu", "log_every": 5, "threads": 2}}


def grid(experiments, **extra):
    return expand_grid(StudyConfig.model_validate({**BASE, **extra, "experiments": experiments}), "my.yaml")


def test_sweep_is_a_cartesian_product_named_by_its_sorted_keys_and_run_per_seed():
    cells = grid({"baseline": {}, "wide": {"family": "baseline", "sweep": {"train.lr_head": [1e-4, 1e-3],
                                                                             "label_smoothing": [0.0, 0.1]}}})
    names = sorted({c.name for c in cells})
    assert names == ["baseline", "wide_label_smoothing0.0_lr_head0.0001", "wide_label_smoothing0.0_lr_head0.001",
                     "wide_label_smoothing0.1_lr_head0.0001", "wide_label_smoothing0.1_lr_head0.001"]
    assert len(cells) == 5 * 2
    c = next(c for c in cells if c.name == "wide_label_smoothing0.1_lr_head0.001" and c.seed == 2)
    assert c.config.loss == {"label_smoothing": 0.1}
    assert c.config.train.lr_head == 0.001 and c.config.train.epochs == 1 and c.config.seed == 2


def test_a_cells_name_does_not_depend_on_the_key_order_of_its_sweep():
    a = grid({"token": {"model": {"lora": {}}, "sweep": {"k": [4, 8], "alpha": [0.2]}}})
    b = grid({"token": {"model": {"lora": {}}, "sweep": {"alpha": [0.2], "k": [4, 8]}}})
    assert [c.name for c in a] == [c.name for c in b] == ["token_alpha0.2_k4"] * 2 + ["token_alpha0.2_k8"] * 2
    assert [c.config for c in a] == [c.config for c in b]


def test_runtime_settings_are_not_part_of_a_cells_config():
    (c, _) = grid({"baseline": {}})
    assert "runtime" not in c.config.model_dump() and "device" not in c.config.model_dump()


def test_experiment_overrides_merge_into_the_defaults():
    (c, _) = grid({"short": {"family": "baseline", "model": {"max_len": 32}}})
    assert c.config.model.max_len == 32 and c.config.model.name == "embedded"


def test_data_keys_sweep_into_each_cells_own_data():
    cells = grid({"few": {"family": "baseline", "sweep": {"data.few_shot_n": [20, 100]}}}, seeds=[1])
    assert [(c.name, c.config.data.few_shot_n) for c in cells] == [("few_few_shot_n20", 20), ("few_few_shot_n100", 100)]


@pytest.mark.parametrize("experiments, message", [
    ({"baseline": {"lossy": {}}}, "experiments.baseline.lossy: unknown key; did you mean loss?"),
    ({"baseline": {"loss": {"alpha": 0.2}}},
     "experiments.baseline.loss.alpha: unknown key (known: label_smoothing) (cell baseline)"),
    ({"x": {"family": "nope"}}, "experiments.x.family = 'nope': unknown family (known: baseline"),
    ({"x": {}}, "experiments.x: no family is given and 'x' is not one"),
    ({"b": {"family": "baseline", "sweep": {"label_smoothing": [0.1, 0.1]}}},
     "experiments.b.sweep.label_smoothing: the value 0.1 is listed twice (each value makes its own cells, "
     "e.g. b_label_smoothing0.1)"),
    ({"b": {"family": "baseline", "sweep": {"label_smoothing": []}}}, "experiments.b.sweep.label_smoothing: an empty list"),
    ({"b": {"family": "baseline", "sweep": {"optim.lr": [1]}}}, "experiments.b.sweep.optim.lr: a dotted sweep key must start"),
    ({"b": {"family": "baseline", "sweep": {"train.lr_top": [0.1, -1.0]}}},
     "experiments.b.sweep.train.lr_top = -1.0: must be > 0 (cell b_lr_top-1.0)"),
    ({"a": {"family": "baseline", "sweep": {"label_smoothing": [0.1]}},
      "a_label_smoothing0.1": {"family": "baseline"}}, "both make a cell named 'a_label_smoothing0.1'"),
])
def test_grid_errors_name_the_file_the_key_path_and_the_cell(experiments, message):
    with pytest.raises(ConfigError) as e:
        try:
            grid(experiments)
        except Exception as err:  # the top-level model's own errors come through validate() in plan()
            if isinstance(err, ConfigError):
                raise
            from contrastlab.plan.config import validate
            validate(StudyConfig, {**BASE, "experiments": experiments}, "my.yaml")
    assert str(e.value).startswith("my.yaml: ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)
