"""Live tracking (contrastlab.operations.tracking), read back with each library's own reader: TensorBoard's
EventAccumulator on the run folder, MlflowClient on the study's SQLite store. The training and
probe jobs are separate processes: here, two Tracking objects on the same run."""
from __future__ import annotations

import logging

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from contrastlab.plan import layout
from contrastlab.plan.config import CellConfig, RuntimeConfig
from contrastlab.operations.tracking import RunRef, Tracking

CFG = CellConfig(cell="scl_alpha0.5", family="scl", seed=2, loss={"alpha": 0.5, "tau": 0.1})
HISTORY = [{"step": s, "epoch": 1, "examples": 32, "loss": 1.0 / s, "grad_norm": 2.0 * s, "lr": 1e-4 * s,
            "lr_head": 1e-3, "loss_ce": 0.5 / s, "loss_supcon": 0.25 / s, "time_s": 0.1 * s} for s in (1, 2, 3, 4)]
TEST = {"accuracy": 0.75, "roc_auc": 0.8, "macro_f1": 0.7, "val_accuracy": 0.7, "peak_memory_mb": 900.0, "steps": 4,
        "n_train": 160, "collapsed": False}  # a finished cell's metrics.json, in part
PROBE = {"n": 60, "svm_acc": 0.65, "knn1_acc": 0.6}


def run_jobs(results, runtime, history=HISTORY):
    """What the training job and then the probe job log, each in its own Tracking."""
    ref = RunRef(str(results), CFG.family, CFG.cell, CFG.seed)
    with Tracking(runtime, ref, CFG.model_dump()) as tracker:
        for row in history:
            tracker.log("train", row, row["step"])
        tracker.log("val", {"step": 4, "epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.7}, 4)
        tracker.log("final", TEST, 4)
    with Tracking(runtime, ref) as tracker:
        tracker.log("probe", PROBE, 0)
    return ref


def events(results) -> EventAccumulator:
    acc = EventAccumulator(layout.tensorboard_dir(str(results), CFG.family, CFG.cell, CFG.seed))
    acc.Reload()
    return acc


def test_tensorboard_run_holds_every_term_as_it_happened_the_test_and_probe_results_and_the_config(tmp_path):
    run_jobs(tmp_path, RuntimeConfig())  # the default: tensorboard only
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["scl"]  # grouped by family
    acc = events(tmp_path)
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert scalars["train/loss"] == [(s, pytest.approx(1.0 / s)) for s in (1, 2, 3, 4)]
    assert scalars["train/loss_supcon"] == [(s, pytest.approx(0.25 / s)) for s in (1, 2, 3, 4)]
    assert [v for _, v in scalars["train/step_time_s"]] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert scalars["train/grad_norm"][-1] == (4, 8.0) and scalars["train/lr"][0] == (1, pytest.approx(1e-4))
    assert scalars["val/accuracy"] == [(4, pytest.approx(0.7))]
    assert scalars["test/accuracy"] == [(4, 0.75)] and scalars["probe/svm_acc"] == [(0, pytest.approx(0.65))]
    assert scalars["val/accuracy_of_tested_weights"] == [(4, pytest.approx(0.7))]
    assert scalars["run/peak_memory_mb"] == [(4, 900.0)]
    assert not any("n_train" in t or "steps" in t or "examples" in t for t in scalars)  # counts are not metrics
    # the resolved config, as TensorBoard's hyper-parameters of this run
    content = acc.PluginTagToContent("hparams")
    start = next(plugin_data_pb2.HParamsPluginData.FromString(v) for v in content.values()
                 if plugin_data_pb2.HParamsPluginData.FromString(v).HasField("session_start_info"))
    hp = start.session_start_info.hparams
    assert hp["loss.alpha"].number_value == 0.5 and hp["cell"].string_value == CFG.cell
    assert hp["train.lr_top"].number_value == pytest.approx(2e-5) and hp["seed"].number_value == 2


def test_a_rerun_of_the_cell_replaces_its_curves_and_a_resumed_one_continues_them(tmp_path):
    run_jobs(tmp_path, RuntimeConfig())
    resumed = [dict(row, loss=9.0) for row in HISTORY[2:]]  # resumed from a checkpoint after step 2
    run_jobs(tmp_path, RuntimeConfig(), resumed)
    loss = [(e.step, e.value) for e in events(tmp_path).Scalars("train/loss")]
    assert loss == [(1, 1.0), (2, 0.5), (3, 9.0), (4, 9.0)]  # the interrupted attempt's 3 and 4 purged
    run_jobs(tmp_path, RuntimeConfig(), [dict(row, loss=7.0) for row in HISTORY])  # a fresh run (new config)
    assert [e.value for e in events(tmp_path).Scalars("train/loss")] == [7.0] * 4


def test_mlflow_run_named_by_cell_and_seed_gets_the_config_every_step_and_the_probe_job_results(tmp_path):
    from mlflow.tracking import MlflowClient

    ref = run_jobs(tmp_path, RuntimeConfig(tracking=["mlflow"]))
    assert not (tmp_path / "tb").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")  # the default local store
    exp = client.get_experiment_by_name(ref.experiment)
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "scl_alpha0.5/seed2" and run.info.status == "FINISHED"
    assert run.data.tags["cell"] == CFG.cell and run.data.tags["family"] == "scl"
    assert run.data.params["loss.tau"] == "0.1" and run.data.params["train.batch_size"] == "16"
    history = client.get_metric_history(run.info.run_id, "train/loss_ce")
    assert [(m.step, m.value) for m in history] == [(s, pytest.approx(0.5 / s)) for s in (1, 2, 3, 4)]
    assert run.data.metrics["test/accuracy"] == 0.75 and run.data.metrics["probe/knn1_acc"] == 0.6
    assert run.data.metrics["val/accuracy"] == pytest.approx(0.7)


def test_a_tracker_that_fails_warns_once_and_the_others_keep_logging(tmp_path, caplog):
    runtime = RuntimeConfig(tracking=["mlflow", "tensorboard"], tracking_uri="bogus://nowhere")
    with caplog.at_level(logging.WARNING, logger="contrastlab.operations.tracking"):
        run_jobs(tmp_path, runtime)
    warned = [r.getMessage() for r in caplog.records if "mlflow is off" in r.getMessage()]
    assert len(warned) == 2 and all("scl_alpha0.5/seed2" in w for w in warned)  # once per job: train, probe
    assert len(events(tmp_path).Scalars("train/loss")) == 4


def test_tracking_is_on_by_default_and_names_only_known_trackers():
    assert RuntimeConfig().tracking == ["tensorboard"]
    with pytest.raises(ValueError, match="tensorboard"):
        RuntimeConfig.model_validate({"tracking": ["tensorbord"]})


@pytest.mark.e2e
def test_a_study_run_shows_every_cell_in_tensorboard_and_mlflow(tiny_deberta_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    from workflow_helpers import snakemake, write_config

    experiments = {"baseline": {"family": "baseline"}, "scl": {"loss": {"alpha": 0.2}}}
    config = write_config(tmp_path / "study.yaml", tiny_deberta_dir, experiments=experiments, seeds=[1, 2],
                          **{"runtime.tracking": ["tensorboard", "mlflow"], "probe.layers": []})
    snakemake(tmp_path, config, "--cores", "2", "--resources", "gpu=1")
    runs = {(c, s) for c in ("baseline", "scl") for s in (1, 2)}
    tb = {tuple(p.relative_to(tmp_path / "results/tb").parts) for p in (tmp_path / "results/tb").glob("*/*/seed*")}
    assert tb == {(c, c, f"seed{s}") for c, s in runs}  # family / cell / seed
    for cell, seed in runs:
        acc = EventAccumulator(str(tmp_path / "results/tb" / cell / cell / f"seed{seed}"))
        acc.Reload()
        steps = [e.step for e in acc.Scalars("train/loss")]
        assert steps == list(range(1, len(steps) + 1)) and len(steps) == 5  # 160 examples, 32 per step
        assert {"train/grad_norm", "train/step_time_s", "val/accuracy", "test/accuracy", "probe/svm_acc"} <= set(
            acc.Tags()["scalars"])
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results/mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("results").experiment_id])
    assert {r.info.run_name for r in found} == {f"{c}/seed{s}" for c, s in runs}
    assert all({"test/accuracy", "probe/svm_acc", "train/loss"} <= set(r.data.metrics) for r in found)


def test_wandb_offline_run_of_the_training_and_probe_jobs_is_one_run_with_every_metric(tmp_path, monkeypatch):
    """wandb 0.31 ships no Python reader of its offline transaction log (the datastore module moved
    into its Go core): the test reads the run folders W&B wrote and the names in that log."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_jobs(tmp_path, RuntimeConfig(tracking=["wandb"]))
    runs = sorted((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # the training job's and the probe job's, offline
    ids = {p.name.rsplit("-", 1)[1] for p in runs}
    assert len(ids) == 1  # one run id: `wandb sync` makes them one run
    log = b"".join(p.read_bytes() for p in (tmp_path / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    for name in (b"train/loss_supcon", b"val/accuracy", b"test/accuracy", b"probe/svm_acc", b"scl_alpha0.5/seed2",
                 b"train.lr_top"):
        assert name in log, name
