"""Live tracking of every cell x seed run in TensorBoard, MLflow or W&B (`runtime.tracking`).

One run per cell x seed, named `<cell>/seed<seed>`, with the cell's resolved config as its
hyper-parameters. The training job logs each history row (loss terms, grad norm, LR, step time)
and each validation as it happens, then the test metrics; the probe job, a separate process,
logs its results to the same run:
- TensorBoard: the same folder, results/tb/<family>/<cell>/seed<seed> (contrastlab.plan.layout), so
  `tensorboard --logdir results/tb` shows the study grouped by family. A training job that starts
  at step 1 clears the folder of an earlier run; one that resumes from a checkpoint purges the
  events past its step (SummaryWriter's purge_step), so a rerun never shows two curves.
- MLflow: the run found by its tags (cell, seed) in the experiment named after the results
  folder; a SQLite store under results/ unless `runtime.tracking_uri` names another. A training
  job that starts at step 1 opens a new run (MLflow keeps the earlier one); one that resumes, and
  the probe job, add to the latest. Metrics are written in batches, at most FLUSH_S late.
- W&B: a run id derived from the results folder, cell and seed, resumed by the probe job;
  offline (files under results/wandb, `wandb sync` uploads them) unless logged in.

Tracking never changes a result and never fails a cell: a tracker that cannot start or write
(a bad URI, a missing package) warns once and is dropped for the rest of the job.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import time
from pathlib import Path

from contrastlab.plan import layout

log = logging.getLogger("contrastlab.operations.tracking")
# History/validation columns -> metric names; columns not listed (step, epoch, examples) are not metrics.
RENAMED = {"train": {"time_s": "step_time_s"}, "val": {"val_loss": "loss", "val_accuracy": "accuracy"}}
SKIPPED = {"train": {"step", "epoch", "examples"}, "val": {"step", "epoch", "train_loss"}}
FLUSH_S = 10.0  # MLflow: metrics are written at most this long after they happen (TensorBoard: flush_secs)
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
# A finished cell's metrics.json -> metric names (the rest of it is counts, settings and provenance).
FINAL = {"accuracy": "test/accuracy", "roc_auc": "test/roc_auc", "macro_f1": "test/macro_f1",
         "val_accuracy": "val/accuracy_of_tested_weights", "train_time_s": "run/train_time_s",
         "step_time_s": "run/median_step_time_s", "peak_memory_mb": "run/peak_memory_mb"}


def metric_values(group: str, values: dict) -> dict[str, float]:
    """{"<group>/<name>": value} of the finite numbers in `values`: a history row (group train), a
    validation (val), a finished cell's metrics (final: test metrics and run costs, named in FINAL)
    or probe results (probe)."""
    if group == "final":
        return {FINAL[k]: float(v) for k, v in values.items()
                if k in FINAL and isinstance(v, (int, float)) and v is not None and math.isfinite(v)}
    out = {}
    for key, value in values.items():
        if key in SKIPPED.get(group, ()) or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[f"{group}/{RENAMED.get(group, {}).get(key, key)}"] = float(value)
    return out


def flat_params(config: dict, prefix: str = "") -> dict[str, object]:
    """A resolved cell config as flat hyper-parameters: {"train.lr_top": 2e-5, "model.lora.r": 8}.
    Lists and None become text (what every tracker accepts)."""
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


class RunRef:
    """Which run: the study's results folder, and the cell x seed."""

    def __init__(self, results: str, family: str, cell: str, seed: int):
        self.results, self.family, self.cell, self.seed = str(results), family, cell, int(seed)
        self.name = f"{cell}/seed{self.seed}"
        self.experiment = Path(results).resolve().name or "contrastlab"

    @property
    def tags(self) -> dict[str, str]:
        return {"cell": self.cell, "seed": str(self.seed), "family": self.family}


class TensorBoard:
    def __init__(self, ref: RunRef, runtime, params: dict | None, fresh: bool):
        self.dir = Path(layout.tensorboard_dir(ref.results, ref.family, ref.cell, ref.seed))
        self.params, self.fresh, self.writer = params, fresh, None

    def _open(self, step: int):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        purge = None
        if self.fresh and step <= 1:
            shutil.rmtree(self.dir, ignore_errors=True)  # an earlier run of this cell x seed
        elif self.fresh:
            purge = step  # resumed from a checkpoint: drop what the interrupted attempt logged past it
        self.writer = SummaryWriter(str(self.dir), purge_step=purge, flush_secs=int(FLUSH_S))
        if self.params is not None and step <= 1:
            from torch.utils.tensorboard.summary import hparams

            declared = {f"test/{k}": 0.0 for k in ("accuracy", "roc_auc", "macro_f1")} | {"val/accuracy": 0.0}
            for summary in hparams(self.params, declared):
                self.writer.file_writer.add_summary(summary)

    def log(self, metrics: dict[str, float], step: int):
        if self.writer is None:
            self._open(step)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self, failed: bool):
        if self.writer is not None:
            self.writer.close()


class MLflow:
    def __init__(self, ref: RunRef, runtime, params: dict | None, fresh: bool):
        from mlflow.tracking import MlflowClient

        # an unreachable server: fail in seconds rather than MLflow's minutes of retries (the user's setting wins)
        for var, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(var, value)
        self.ref, self.params, self.fresh, self.run_id = ref, params, fresh, None
        self.pending, self.flushed = [], 0.0
        store = layout.mlflow_store(ref.results)
        self.uri = runtime.tracking_uri or f"sqlite:///{Path(store).resolve()}"
        # parallel jobs share the SQLite file: creating its tables and writing are serialised
        self.lock = None if runtime.tracking_uri else Path(f"{store}.lock")
        if self.lock is not None:
            self.lock.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():  # a new store's tables are created here: one job at a time
            self.client = MlflowClient(tracking_uri=self.uri)
            self.client.search_experiments(max_results=1)

    @contextlib.contextmanager
    def _locked(self):
        if self.lock is None:
            yield
            return
        import fcntl

        with open(self.lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.ref.experiment)
        return exp.experiment_id if exp else self.client.create_experiment(self.ref.experiment)

    def _open(self, step: int):
        from mlflow.entities import Param

        exp = self._experiment_id()
        runs = [] if self.fresh and step <= 1 else find_mlflow_runs(self.client, exp, self.ref, 1)
        self.run_id = runs[0].info.run_id if runs else self.client.create_run(
            exp, run_name=self.ref.name, tags=self.ref.tags).info.run_id
        if self.params is not None and not runs:
            items = [Param(k, str(v)[:6000]) for k, v in self.params.items()]
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log(self, metrics: dict[str, float], step: int):
        from mlflow.entities import Metric

        now = time.time()
        self.pending += [Metric(k, v, int(now * 1000), step) for k, v in metrics.items()]
        if self.run_id is None or now - self.flushed >= FLUSH_S or len(self.pending) >= 900:
            self._flush(step)

    def _flush(self, step: int):
        """One write of what was logged since the last (a SQLite write costs tens of ms: not every step)."""
        with self._locked():
            if self.run_id is None:
                self._open(step)
            if self.pending:
                self.client.log_batch(self.run_id, metrics=self.pending)
        self.pending, self.flushed = [], time.time()

    def close(self, failed: bool):
        if self.pending:
            self._flush(0)
        if self.run_id is not None and (failed or self.params is not None):
            with self._locked():
                self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def find_mlflow_runs(client, experiment_id: str, ref: RunRef, limit: int = 1000):
    """The MLflow runs of one cell x seed, the latest first."""
    query = f"tags.cell = '{ref.cell}' and tags.seed = '{ref.seed}'"
    return client.search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time DESC"],
                              max_results=limit)


class WandB:
    def __init__(self, ref: RunRef, runtime, params: dict | None, fresh: bool):
        import wandb

        self.wandb, self.ref, self.params, self.run = wandb, ref, params, None
        key = f"{Path(ref.results).resolve()}|{ref.cell}|{ref.seed}"
        self.id = hashlib.sha256(key.encode()).hexdigest()[:16]

    def log(self, metrics: dict[str, float], step: int):
        if self.run is None:
            wandb, ref = self.wandb, self.ref
            mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
            root = Path(layout.wandb_dir(ref.results))
            root.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(project=ref.experiment, name=ref.name, group=ref.family, id=self.id,
                                  resume="allow", mode=mode, dir=str(root), config=self.params,
                                  tags=[ref.family], reinit="create_new",
                                  settings=wandb.Settings(console="off", silent=True))  # the job's log stays ours
            self.run.define_metric("*", step_metric="step", step_sync=False)
        self.run.log({**metrics, "step": step})

    def close(self, failed: bool):
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.wandb.teardown()  # waits for W&B's service to write the run out


CLASSES = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}


class Tracking:
    """The run of one cell x seed in each tracker of `runtime.tracking`.

    params: the resolved cell config (the training job, which starts the run) or None (the probe
    job, which adds to it). Trackers open at the first `log`, when the step tells a fresh run
    (step 1) from a resumed one."""

    def __init__(self, runtime, ref: RunRef, params: dict | None = None):
        self.ref, self.backends = ref, {}
        flat = flat_params(params) if params is not None else None
        for name in runtime.tracking:
            self._guard(name, lambda: self.backends.__setitem__(
                name, CLASSES[name](ref, runtime, flat, fresh=params is not None)))

    def _guard(self, name: str, action) -> None:
        try:
            action()
        except Exception as e:  # noqa: BLE001 - a tracker never fails a cell
            log.warning("tracking: %s is off for %s: %s: %s", name, self.ref.name, type(e).__name__,
                        str(e).splitlines()[0][:300] if str(e) else "")
            self.backends.pop(name, None)

    def log(self, group: str, values: dict, step: int) -> None:
        """Log a history row ("train"), a validation ("val"), a finished cell's metrics ("final") or
        probe results ("probe") at an optimizer step."""
        metrics = metric_values(group, values)
        if metrics:
            for name, backend in list(self.backends.items()):
                self._guard(name, lambda: backend.log(metrics, step))

    def close(self, failed: bool = False) -> None:
        for name, backend in list(self.backends.items()):
            self._guard(name, lambda: backend.close(failed))
        self.backends = {}

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        self.close(failed=kind is not None)
