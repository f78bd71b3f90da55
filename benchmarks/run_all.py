"""Run every benchmark and rewrite benchmarks/RESULTS.md from their JSON results.

    python benchmarks/run_all.py            # what `make bench` runs (~15-20 min on 2 cores)
    python benchmarks/run_all.py --quick    # every benchmark in its smoke-test mode
    python benchmarks/run_all.py --only flops embed_speed
    python benchmarks/run_all.py --report-only   # rewrite RESULTS.md from the JSON already there

Each benchmark runs in its own subprocess (a crash or a timeout loses only that one) and writes
benchmarks/results/<name>.json; a JSON older than this run's start is reported as not rerun.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

HERE = Path(__file__).resolve().parent
REPORT = HERE / "RESULTS.md"
# (name, script, extra args, extra env, timeout s)
BENCHMARKS = [
    ("trainer_vs_ours", "trainer_vs_ours.py", [], {}, 600),
    ("flops", "flops.py", [], {}, 420),
    ("flops_passive", "flops.py", ["--out", str(RESULTS / "flops_passive.json")],
     {"OMP_WAIT_POLICY": "PASSIVE"}, 420),
    ("family_cost", "family_cost.py", ["--repeats", "7"], {}, 600),
    ("embed_speed", "embed_speed.py", [], {}, 420),
    ("probe_speed", "probe_speed.py", [], {}, 600),  # two 20,000-point sizes: ~5 min on 2 cores
    ("dag_timing", "dag_timing.py", [], {}, 420),
]


def run(name, script, extra, env, timeout, quick: bool) -> dict:
    cmd = [sys.executable, str(HERE / script), *(["--quick"] if quick and "--quick" not in extra else []), *extra]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env})
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        def text(x):
            return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
        rc, out = "timeout", text(e.stdout) + text(e.stderr)
    wall = time.perf_counter() - t
    tail = "\n".join(line for line in out.splitlines() if "Loading weights" not in line and "it/s]" not in line)
    print(tail[-2500:], flush=True)
    print(f"-- {name}: rc {rc}, {wall:.0f} s", flush=True)
    return {"name": name, "rc": rc, "wall_s": wall, "tail": tail[-1500:]}


# ---- RESULTS.md --------------------------------------------------------------------------------

def _load(name: str) -> dict | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _verdict(met) -> str:
    return "—" if met is None else ("**MET**" if met else "**MISSED**")


def section_trainer(r: dict) -> list[str]:
    c, q = r["contenders"], r["ratios"]
    lines = [f"{r['n_train']} training examples x {r['epochs']} epoch(s), batch {r['batch_size']} x grad-accum "
             f"{r['grad_accum']}, max_len {r['max_len']}, top {r['trainable_layers']} layers trainable, "
             f"{r['threads']} threads per contender; {r['n_test']} test examples; turns of "
             f"{r['segment_steps']} optimizer steps, round robin.", "",
             "| contender | samples/s (median turn) | samples/s (total) | training s | turns | test accuracy |",
             "|---|---:|---:|---:|---:|---:|"]
    for n, label in (("ours", "ours (`train`)"), ("trainer_padded", "Trainer, padded to max_len (reference)"),
                     ("trainer_grouped", "Trainer, dynamic padding + group_by_length")):
        x = c[n]
        lines.append(f"| {label} | {x['median_turn_samples_per_s']:.2f} | {x['samples_per_s']:.2f} | "
                     f"{x['train_s']:.1f} | {x['turns']} | {x['accuracy']:.4f} |")
    lines += ["", "| ratio (ours over) | goal | measured | total-time ratio | accuracy diff (tol.) | verdict |",
              "|---|---:|---:|---:|---:|---|"]
    for n, label in (("trainer_padded", "Trainer as the reference used it"), ("trainer_grouped", "Trainer at its best")):
        x = q[n]
        lines.append(f"| {label} | >= {x['goal']:.1f}x | {x['ratio']:.2f}x | {x['ratio_total_time']:.2f}x | "
                     f"{x['accuracy_diff']:+.4f} (±{r['accuracy_tolerance']:.4f}) | {_verdict(x['met'])} |")
    return lines


def section_flops(r: dict, passive: dict | None) -> list[str]:
    lines = [f"{r['steps']} real optimizer steps of the default baseline cell ({r['samples_per_round']} samples, "
             f"micro-batch shapes {r['micro_batch_shapes']}), {r['threads']} threads, {r['repeats']} interleaved "
             f"rounds against a {r['peak_mm_n']}² fp32 `torch.mm`.", "",
             "| figure | value |", "|---|---:|",
             f"| training FLOPs per round (FlopCounterMode) | {r['train_flops'] / 1e9:.1f} GFLOP |",
             f"| achieved FLOP/s while training (median round) | {r['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s |",
             f"| peak matmul FLOP/s (median) | {r['peak_flops_per_s'] / 1e9:.1f} GFLOP/s |",
             f"| **fraction of peak** (goal >= {r['goal']}) | **{r['fraction_of_peak']:.3f}** {_verdict(r['met'])} |",
             f"| matmul at the model's own shapes, fraction of peak | {r['model_shape_mm_fraction_of_peak']:.2f} |",
             f"| padding share of the tokens (dynamic padding) | {r['padding_share']:.3f} |"]
    if passive:
        lines.append(f"| fraction of peak with `OMP_WAIT_POLICY=PASSIVE` (separate run) | "
                     f"{passive['fraction_of_peak']:.3f} ({passive['achieved_flops_per_s'] / 1e9:.1f} of "
                     f"{passive['peak_flops_per_s'] / 1e9:.1f} GFLOP/s) |")
    lines += ["", "Where the training time goes (torch.profiler, self time of the same steps):", "",
              "| category | share of wall time |" + (" with PASSIVE |" if passive else ""),
              "|---|---:|" + ("---:|" if passive else "")]
    for k, v in r["profile"]["share"].items():
        extra = f" {passive['profile']['share'].get(k, 0):.1%} |" if passive else ""
        lines.append(f"| {k} | {v:.1%} |{extra}")
    return lines


def section_family(r: dict) -> list[str]:
    m = r.get("meta", {})
    lines = [f"From `family_cost.py`: device {m.get('device')}, clock {m.get('clock')}, "
             f"{m.get('torch_threads')} threads, {m.get('repeats')} interleaved repeats, batch {m.get('batch_shape')}.",
             "", "| variant | step-time ratio to baseline | target | verdict | median step s | peak RSS MB | RSS growth MB |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for v in r.get("variants", []):
        def f(key, fmt):
            return format(v[key], fmt) if v.get(key) is not None else "—"
        target = f"<= {v['target']}x" if v.get("target") else "—"
        lines.append(f"| {v['variant']} | {f('ratio', '.2f')}x | {target} | {_verdict(v.get('meets_target'))} | "
                     f"{f('median_step_s', '.3f')} | {f('peak_rss_mb', '.0f')} | {f('rss_growth_mb', '.0f')} |")
    return lines


def section_embed(r: dict) -> list[str]:
    lines = [f"Batch {r['batch_size']}, {r['threads']} threads, {r['repeats']} interleaved repeats (median); "
             "each side loads the data and the trained weights and writes the .npz.", "",
             "| case | n | mean tokens | max_len | ours samples/s | plain samples/s | ratio | max abs diff | verdict (>= 1.0x) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in r["cases"]:
        lines.append(f"| {c['case']} | {c['n']} | {c['mean_tokens']:.1f} | {c['max_len']} | "
                     f"{c['ours_samples_per_s']:.1f} | {c['plain_samples_per_s']:.1f} | {c['ratio']:.2f}x | "
                     f"{c['max_abs_diff']:.1e} | {_verdict(c['met'])} |")
    return lines


def section_probe(r: dict) -> list[str]:
    scope = ("`--quick` mode (one 3,000 x 384 size: a smoke test, not the figure to judge)"
             if r.get("quick") else "full mode: 20,000 x 384 (2 classes) and 20,000 x 768 (3 classes)")
    lines = [f"From `probe_speed.py`, {scope}. Goal: time ratio ours / reference <= {r['goal_ratio']}; "
             f"measured overall **{r['overall_ratio']:.2f}x** {_verdict(r['overall_ratio'] <= r['goal_ratio'])}; "
             f"all metrics agree within tolerance: {r['all_agree']}.", "",
             "SVM solver, both sides: scikit-learn's liblinear primal (trust-region Newton) for the squared hinge "
             "with L2, C = 1. Ours pins `LinearSVC(dual=False)`; the reference's default `dual=\"auto\"` picks "
             "the same primal solver here (n_samples > n_features); versions before 1.5 defaulted to the dual.", "",
             "| size | stage | ours s | reference s | ratio |", "|---|---|---:|---:|---:|"]
    for s in r["sizes"]:
        for k, v in s["times_s"].items():
            lines.append(f"| {s['n']} x {s['d']} ({s['classes']} classes) | {k} | {v['ours']:.1f} | "
                         f"{v['reference']:.1f} | {v['ratio']:.2f}x |")
    lines += ["", "| size | metric | ours | reference | tolerance | agree |", "|---|---|---:|---:|---:|---|"]
    for s in r["sizes"]:
        for m, tol in s["tolerance"].items():
            lines.append(f"| {s['n']} x {s['d']} | {m} | {s['ours'][m]:.4f} | {s['reference'][m]:.4f} | "
                         f"{tol} | {s['agree'][m]} |")
    return lines


def section_dag(r: dict) -> list[str]:
    lines = [f"Jobs planned: {r['jobs_planned']}; the default run's outputs faked finished: {r['default_outputs']} "
             f"files; the tiny study's real run took {r['tiny_full_run_s']:.0f} s and its no-op found nothing to do: "
             f"{r['tiny_noop_nothing_to_do']}. {r['repeats']} interleaved repeats, median.", "",
             f"| command | median s | over the floor | minus the floor (s) | verdict (<= {r['rows'][1]['goal_s']:.0f} s) |",
             "|---|---:|---:|---:|---|"]
    floor = r["rows"][0]["median_s"]
    for row in r["rows"]:
        lines.append(f"| {row['what']} | {row['median_s']:.2f} | {row['over_floor']:.1f}x | "
                     f"{row['median_s'] - floor:.2f} | {_verdict(row['met'])} |")
    if floor > 5:
        lines.append("\nThe floor itself is slow here: on import, snakemake-executor-plugin-slurm runs "
                     "`scontrol show config`, which waits ~9 s when the machine has SLURM clients but no "
                     "slurmctld answers. The DAG's own cost is the 'minus the floor' column.")
    lines += [""] + [f"- {n}" for n in r.get("notes", [])] if r.get("notes") else []
    return lines


SECTIONS = [
    ("trainer_vs_ours", "1. Training loop vs the Hugging Face Trainer", section_trainer),
    ("flops", "2. Fraction of the machine's limit", None),
    ("family_cost", "3. Per-family step time and peak memory vs the baseline", section_family),
    ("embed_speed", "4. Embedding extraction", section_embed),
    ("probe_speed", "5. Probe stage vs the reference evaluation", section_probe),
    ("dag_timing", "6. The DAG", section_dag),
]


def write_report(runs: dict, started: float, wall: float | None, quick: bool, m: dict) -> None:
    lines = ["# Benchmark results", "",
             "Generated by `make bench` (`benchmarks/run_all.py`); what each benchmark measures and how to read "
             "it: [README.md](README.md). Every comparison was measured side by side in one run (interleaved "
             "repeats, median): read the ratios, not the absolute times.", "",
             f"- machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}; {m['platform']}",
             f"- torch {m['torch']}, transformers {m['transformers']}, Python {m['python']}",
             f"- date: {m['date']}; load average at the end {', '.join(f'{x:.1f}' for x in m['load_avg'])} "
             "(a shared machine: a load near or above the cores means neighbours ran during the benchmarks)",
             f"- mode: {'--quick (smoke test: not the figures to judge)' if quick else 'full'}"
             + (f"; `make bench` wall time {wall / 60:.1f} min" if wall else ""), ""]
    status = ["| benchmark | exit | wall s |", "|---|---|---:|"]
    for name, r in runs.items():
        status.append(f"| {name} | {r['rc']} | {r['wall_s']:.0f} |")
    if runs:
        lines += ["Runs of this invocation:", "", *status, ""]
    for name, title, fn in SECTIONS:
        lines += [f"## {title}", ""]
        data = _load(name)
        fresh = data is not None and (RESULTS / f"{name}.json").stat().st_mtime >= started
        if data is None:
            lines += ["_No result: the benchmark did not produce its JSON._", ""]
            continue
        if not fresh and runs:
            lines += [f"_Not rerun by this invocation (exit {runs.get(name, {}).get('rc', 'not run')}); "
                      "the figures below are from an earlier run._", ""]
        try:
            body = section_flops(data, _load("flops_passive")) if name == "flops" else fn(data)
        except (KeyError, TypeError, ValueError) as e:
            body = [f"_Result present but unreadable by this report ({e!r})._"]
        lines += body + [""]
    REPORT.write_text("\n".join(lines))
    print(f"written {REPORT}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="each benchmark's --quick mode (smoke test)")
    ap.add_argument("--only", nargs="*", default=None, help="names of benchmarks to run")
    ap.add_argument("--report-only", action="store_true", help="only rewrite RESULTS.md from the JSON files")
    args = ap.parse_args()
    started = time.time()
    runs, wall, quick = {}, None, args.quick
    meta = RESULTS / "run_all.json"
    box = None
    if args.report_only and meta.exists():  # keep the last real invocation's runs, machine and wall time
        last = json.loads(meta.read_text())
        runs, started, wall, quick = last["runs"], last["started"], last["wall_s"], last["quick"]
        box = last.get("machine")
    if not args.report_only:
        for name, script, extra, env, timeout in BENCHMARKS:
            if args.only and name not in args.only:
                continue
            runs[name] = run(name, script, extra, env, timeout, args.quick)
    if not args.report_only:
        wall = time.time() - started if runs else None
        box = machine()  # as it was at the end of the run: date and load average
        meta.write_text(json.dumps({"runs": runs, "started": started, "wall_s": wall, "quick": quick,
                                    "machine": box}, indent=2))
    write_report(runs, started if runs else 0.0, wall, quick, box or machine())
    failed = [n for n, r in runs.items() if r["rc"] != 0 and not args.report_only]
    if failed:
        print(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
