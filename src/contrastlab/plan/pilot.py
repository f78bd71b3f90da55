"""A short pilot for `contrastlab plan --pilot STEPS`: the study's baseline cell trains for a few
optimizer steps on this device, the same `Trainer.step` a training job runs, and the median
step time (the first step, warm-up, left out) prices every cell's steps (contrastlab.plan.plan_cost).
The data are prepared into a temporary folder unless the study's results already hold them.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path


def step_time(plan, steps: int) -> tuple[float, str]:
    """(median seconds per optimizer step of the baseline cell, the device in words)."""
    import torch

    from contrastlab.plan import layout
    from contrastlab.training.batching import epoch_steps
    from contrastlab.plan.config import DataConfig, RuntimeConfig
    from contrastlab.data.splits import prepare
    from contrastlab.operations.devices import init_device, pick_device
    from contrastlab.training.model import load_tokenizer
    from contrastlab.data.prepared import load_prepared
    from contrastlab.training.train import Trainer, configure_runtime

    cell = next(c for c in plan.cells if c.name == plan.baseline)
    runtime = RuntimeConfig.model_validate(plan.study.runtime.model_dump())
    configure_runtime(runtime)
    device = init_device(pick_device(runtime.device, jobs_per_gpu=runtime.jobs_per_gpu))
    prep = plan.preps[plan.prep_of[(cell.name, cell.seed)]]
    with tempfile.TemporaryDirectory(prefix="contrastlab-pilot-") as tmp:
        prepared = Path(layout.prepared_dir(plan.study.results, prep.key))
        if not (prepared / layout.PREPARED_FILES["tokens"]).exists():
            prepared = Path(tmp) / "prepared"
            prepare(DataConfig.model_validate(prep.data), load_tokenizer(prep.tokenizer), prep.max_len, prepared)
        data = load_prepared(prepared)
        trainer = Trainer(cell.config, runtime, data, device, total_steps=steps + 1)
        effective = cell.config.train.batch_size * cell.config.train.grad_accum
        order = epoch_steps([len(s) for s in data.splits["train"].ids], effective, cell.seed, 0)
        times = []
        for k in range(steps + 1):
            t0 = time.perf_counter()
            trainer.step(order[k % len(order)], 0, k + 1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), f"{device} ({trainer.precision.name}, {runtime.threads} thread(s))"
