"""`contrastlab`: check a config, list its cells, show a study's status, rerun one cell's stage,
or write the config reference.

    contrastlab check my.yaml             every problem Snakemake's DAG build would stop on, in one line
    contrastlab cells my.yaml [--json]    the cells: family, reference, prepared data, resolved params
    contrastlab status my.yaml            results/status.md: done, failed (why) or not run, per cell x seed
    contrastlab rerun my.yaml CELL [--seed N] [--stage train|embed]
                                          one cell's stage outside Snakemake, into its usual files
    contrastlab run my.yaml [SNAKEMAKE ARGS...]
                                          a sequential study (seeds: {start, max}): rounds of snakemake,
                                          seeds added to undecided comparisons (contrastlab.operations.runloop)
    contrastlab schema [--check]          workflow/schemas/config.schema.json and docs/config.md
    contrastlab plan my.yaml [--earlier RESULTS_DIR] [--pilot STEPS] [--n-test N] [--flops JSON]
                                          before any training: each comparison's MDD at the planned seeds,
                                          the seeds that reach analysis.target_mdd, the cost in device-hours;
                                          exit 3 when the target is out of reach within the most seeds
    contrastlab submit my.yaml --profile profiles/slurm [--time MIN] [-- SNAKEMAKE ARGS...]
                                          the Snakemake controller as a SLURM job (contrastlab.operations.controller)

A YAML syntax error, a key written twice or an empty file is reported with the file and line
(contrastlab.plan.configfile; Snakemake's own loader of --configfile keeps the last of two keys).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contrastlab.plan.config import ConfigError
from contrastlab.plan.configfile import read_config
from contrastlab.plan.contract import ContractError

REPO = Path(__file__).resolve().parents[2]


def _plan(path):
    from contrastlab.plan.study import plan

    return plan(read_config(path), str(path))


def cmd_check(args) -> int:
    p = _plan(args.config)
    sch = p.study.schedule
    seeds = f"{len(p.study.seeds)} seed(s)" if sch is None else f"{sch.start} to {sch.max} seeds (contrastlab run)"
    print(f"{args.config}: OK: {len(p.cell_names())} cells x {seeds} = {len(p.cells)} runs now, "
          f"{len(p.preps)} prepared dataset(s), families {', '.join(p.families)}, baseline {p.baseline}"
          + (f"; {len(p.trials)} tuning trials ({len(p.trials) // len({t.arm for t in p.trials})} per tuned cell)"
             if p.trials else ""))
    return 0


def cmd_cells(args) -> int:
    p = _plan(args.config)
    rows = []
    for name in p.cell_names():
        c = next(c for c in p.cells if c.name == name)
        seeds = [x.seed for x in p.cells if x.name == name]  # a sequential study's differ by cell
        rows.append({"cell": name, "experiment": c.experiment, "family": c.family, "seeds": seeds,
                     "compared_with": p.reference[name], "sweep": c.sweep,
                     "prepared": list(dict.fromkeys(p.prep_of[(name, x.seed)] for x in p.cells if x.name == name)),
                     "config": c.config.model_dump(), "tuning": [t.values for t in p.trials_of(name)]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        loss = ", ".join(f"{k}={v}" for k, v in r["config"]["loss"].items())
        tuned = f"  (tuned: {len(r['tuning'])} trials of {', '.join(r['tuning'][0])})" if r["tuning"] else ""
        print(f"{r['cell']}  [{r['family']}; vs {r['compared_with']}; data {', '.join(r['prepared'])}]  {loss}{tuned}")
    return 0


def cmd_status(args) -> int:
    from contrastlab.operations.progress import progress
    from contrastlab.operations.status import write_status_table

    p = _plan(args.config)
    rows = write_status_table(p, p.study.results)
    print(Path(p.study.results, "status.md").read_text())
    print(f"Progress: {progress(rows, p.study.results).line()}")  # after a long table too
    return 1 if any(r["state"] == "failed" for r in rows) else 0


def cmd_rerun(args) -> int:
    import torch

    from contrastlab.plan import layout
    from contrastlab.plan.config import RuntimeConfig
    from contrastlab.operations.jobs import job

    p = _plan(args.config)
    seed = args.seed if args.seed is not None else p.study.seed_list()[0]
    cell = next((c for c in p.cells if c.name == args.cell and c.seed == seed), None)
    if cell is None:
        raise ConfigError(f"{args.config}: no cell {args.cell!r} with seed {seed} (contrastlab cells lists them)")
    R, runtime = p.study.results, RuntimeConfig.model_validate(p.study.runtime.model_dump())
    prepared = layout.prepared_dir(R, p.prep_of[(cell.name, seed)])
    torch.set_num_threads(runtime.threads)
    from contrastlab.training.train import fingerprint_of

    attempts = layout.attempts_file(R, args.stage, layout.job_key(cell.name, seed))
    fingerprint = fingerprint_of(cell.config) if args.stage == "train" else ""
    with job(layout.log_file(R, args.stage, cell.name, seed), attempts, fingerprint) as record:
        if args.stage == "train":
            from contrastlab.training.train import train

            train(cell.config, runtime, prepared, layout.stage_files(R, "train", cell.name, seed),
                  layout.train_state(R, cell.name, seed), record)
        else:
            from contrastlab.training.embed import embed

            embed(cell.config, p.study.probe, runtime, prepared,
                  layout.stage_files(R, "train", cell.name, seed)["weights"],
                  layout.stage_files(R, "embed", cell.name, seed)["embeddings"])
    return 0


def cmd_submit(args) -> int:
    from contrastlab.plan import layout
    from contrastlab.operations.controller import SubmitError, submit

    p = _plan(args.config)
    minutes = args.time or p.study.runtime.controller_min
    try:
        job = submit(Path(args.config).resolve(), Path(args.profile).resolve(), p.study.results, minutes,
                     args.snakemake_args, Path.cwd(), args.every)
    except SubmitError as e:
        print(f"submit: {e}", file=sys.stderr)
        return 1
    print(f"submitted the controller of {args.config}: SLURM job {job}, {minutes} min, 1 CPU; its log: "
          f"{layout.controller_log(p.study.results).replace('%j', job)}; progress: contrastlab status {args.config}")
    return 0


def cmd_controller(args) -> int:
    from contrastlab.operations.controller import SubmitError, run_controller
    from contrastlab.operations.progress import progress
    from contrastlab.operations.status import status_rows

    p = _plan(args.config)
    line = lambda: progress(status_rows(p, p.study.results), p.study.results).line()  # noqa: E731
    try:
        return run_controller(Path(args.config), Path(args.profile), args.snakemake_args, line, args.every)
    except SubmitError as e:
        print(f"controller: {e}", file=sys.stderr)
        return 1


def cmd_run(args) -> int:
    from contrastlab.operations.runloop import run

    return run(args.config, args.snakemake_args)


def cmd_plan(args) -> int:
    from contrastlab.plan import plan_cost
    from contrastlab.plan import power
    from contrastlab.plan.plan_report import UNREACHABLE, report, unreachable

    for flag, value, least in (("--n-test", args.n_test, 2), ("--pilot", args.pilot, 1)):
        if value is not None and value < least:
            raise ConfigError(f"{flag} {value}: give at least {least}")
    p = _plan(args.config)
    a = p.study.analysis
    comparisons = {c: r for c, r in p.reference.items() if c != r}
    configs = {c.name: c.config for c in p.cells}
    if args.n_test:
        n_test = {c: args.n_test for c in comparisons}
    elif args.flops:
        n_test = {c: plan_cost.test_examples_of_flops(args.flops) for c in comparisons}
    else:
        n_test = {c: power.config_test_size(configs[c].data) for c in comparisons}
        unknown = sorted(c for c, n in n_test.items() if n is None)
        if unknown:
            raise ConfigError(f"{args.config}: the test size of {unknown[0]} is unknown before its data are read "
                              f"(data.source {configs[unknown[0]].data.source}); give --n-test N or data.max_eval")
    variance = power.earlier_variance(args.earlier, comparisons, a.seed_sd) if args.earlier else {}
    if args.earlier and not variance:
        print(f"plan: {args.earlier} holds no predictions of these comparisons; variance assumed", file=sys.stderr)
    variance = variance or {c: power.assumed_variance(a.seed_sd) for c in comparisons}
    start, most = power.planned_seeds(p.study.seeds)
    lines = power.plan_power(comparisons, n_test, variance, start, most, a.target_mdd)
    jobs = 2 if p.study.probe.enabled else 1
    cost, how = {}, None
    if args.flops:
        cost, how = plan_cost.flop_costs(args.flops, configs), f"counted FLOPs per run from {args.flops}"
    elif args.earlier and (cost := plan_cost.earlier_costs(args.earlier, configs, jobs)):
        how = (f"step times, and the rest of each job (start-up, evaluation: its wall time less its training), "
               f"measured by the earlier study in {args.earlier}")
    elif args.pilot:
        from contrastlab.plan.pilot import step_time

        step_s, device = step_time(p, args.pilot)
        cost = plan_cost.pilot_costs(configs, step_s, jobs)
        how = (f"a {args.pilot}-step pilot of {p.baseline} on {device}: {step_s:.3f} s per step, applied to every "
               f"cell, + {plan_cost.JOB_START_S:.0f} s start-up per job ({jobs} per run)")
    print(report(args.config, lines, a.target_mdd, cost, how))
    if p.trials:  # run once, before the seeds: not in the per-seed figures above
        trial_cost = plan_cost.pilot_costs({t.cell.name: t.cell.config for t in p.trials}, step_s, 1) \
            if args.pilot else {}
        total = sum(c.seconds for c in trial_cost.values())
        print(f"Tuning: {len(p.trials)} trials ({len(p.trials) // len({t.arm for t in p.trials})} per tuned cell), "
              "run once before the seeds: " + (f"{total / 3600:.2f} device-hours at the pilot's step time."
                                                if trial_cost else "not costed (give --pilot STEPS)."))
    short = unreachable(lines, a.target_mdd)
    if short:
        print(short, file=sys.stderr)
        return UNREACHABLE
    return 0


def cmd_schema(args) -> int:
    from contrastlab.plan.schema import write_reference

    stale = write_reference(REPO, check=args.check)
    if stale:
        print(f"out of date: {', '.join(map(str, stale))} (run: contrastlab schema)", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="contrastlab", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, fn in (("check", cmd_check), ("cells", cmd_cells), ("status", cmd_status), ("rerun", cmd_rerun)):
        s = sub.add_parser(name)
        s.add_argument("config", help="the config file (as given to snakemake --configfile)")
        s.set_defaults(fn=fn)
        if name == "cells":
            s.add_argument("--json", action="store_true")
        if name == "rerun":
            s.add_argument("cell")
            s.add_argument("--seed", type=int)
            s.add_argument("--stage", choices=["train", "embed"], default="train")
    for name, fn, text in (("submit", cmd_submit, "queue the Snakemake controller as a SLURM job"),
                           ("controller", cmd_controller, "the controller job's body (contrastlab submit runs it)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("config", help="the config file (as given to snakemake --configfile)")
        s.add_argument("--profile", required=True, help="the SLURM profile (e.g. profiles/slurm)")
        s.add_argument("--time", type=int, help="the controller's time limit in minutes (default runtime.controller_min)")
        s.add_argument("--every", type=float, default=60.0, help="seconds between progress lines in its log")
        s.set_defaults(fn=fn)
    s = sub.add_parser("run", help="a sequential study, round by round until decided (contrastlab.operations.runloop)")
    s.add_argument("config", help="the config file (as given to snakemake --configfile)")
    s.set_defaults(fn=cmd_run)
    s = sub.add_parser("plan", help="power and cost before any training")
    s.add_argument("config", help="the config file (as given to snakemake --configfile)")
    s.add_argument("--earlier", metavar="RESULTS_DIR", help="an earlier study's results folder: its per-example "
                   "predictions give the variance, its metrics and benchmark files the step times")
    s.add_argument("--pilot", type=int, metavar="STEPS", help="train the baseline for STEPS steps here to time a step")
    s.add_argument("--n-test", type=int, metavar="N", help="plan for N test examples (default: from the data caps)")
    s.add_argument("--flops", metavar="JSON", help="counted FLOPs per run (benchmarks/results/paper_cost.json) for "
                   "the GPU cost of a study whose GPU is not here")
    s.set_defaults(fn=cmd_plan)
    s = sub.add_parser("schema")
    s.add_argument("--check", action="store_true", help="only say whether the files are current")
    s.set_defaults(fn=cmd_schema)
    argv = sys.argv[1:] if argv is None else list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)  # submit, controller: what follows is snakemake's
    if argv[:1] == ["run"] and len(argv) > 1:  # run: everything after the config is snakemake's, "--" or not
        cut = 2 + (argv[2:3] == ["--"])
        args = ap.parse_args(argv[:2])
        args.snakemake_args = argv[cut:]
    else:
        args = ap.parse_args(argv[:cut])
        args.snakemake_args = argv[cut + 1:]
    try:
        return args.fn(args)
    except ConfigError as e:  # a ContractError is the code's, not the config's
        print(f"{'contract' if isinstance(e, ContractError) else 'config'} error: {e}", file=sys.stderr)
        return 2



if __name__ == "__main__":
    sys.exit(main())
