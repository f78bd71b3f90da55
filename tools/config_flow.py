"""How a cell's config flows through a training job: the modules it passes through, in order.

    python tools/config_flow.py [--json]

Trains a tiny cell (a random 4-layer DeBERTa, contrastlab.training.random_model, 2 optimizer steps on the
embedded data) under a profiler that records every call of a function of the package that gets a
piece of the cell's config as an argument, directly from a function that got one: the CellConfig,
one of its sections (model, train, data, lora), one of their text values (family, model.name,
train.precision, ...), its loss mapping, or its parsed loss params (RuntimeConfig is the
machine's, not the cell's). The path lists the module of each such call and, when it returns, the
module of the followed call it returns to (consecutive repeats count once). Printed: the path, how many distinct
modules it visits, and how many times it climbs back into a module it had left (a return to the
caller counts: the config went down and came back up); the (caller, callee) module pairs of the
calls, and the modules entered from more than one module (none: the calls form a tree).

Runs against whatever `contrastlab` imports (PYTHONPATH), so an older commit's figure is
`PYTHONPATH=<its worktree>/src python tools/config_flow.py`: it uses only train(), layout and
CellConfig, which every commit since the redesign has.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def carries_config(value, cell_parts: set[int], params_types: tuple) -> bool:
    return id(value) in cell_parts or (params_types and isinstance(value, params_types))


def module_path(fn, *args) -> tuple[list[str], list[tuple[str, str]]]:
    """(path, calls) of fn(*args): the package's modules, in order, of the calls that get a piece of
    args[0] and of the followed calls they return to; the (caller, callee) modules of those calls."""
    import contrastlab
    from contrastlab.plan.config import LossParams

    cfg = args[0]
    sections = [cfg, cfg.model, cfg.train, cfg.data] + ([cfg.model.lora] if cfg.model.lora is not None else [])
    cell_parts = {id(cfg.loss)} | {id(s) for s in sections}
    # and its text values (the family, model.name, train.precision, ...): small ints and bools are
    # shared by every caller, strings are followed by identity
    cell_parts |= {id(v) for s in sections for v in vars(s).values() if isinstance(v, str)}
    root = str(Path(contrastlab.__file__).parent)
    path: list[str] = []
    calls: list[tuple[str, str]] = []  # (caller's module, callee's module) of each followed call across modules
    stack: list = []  # the frames of the calls being followed, innermost last

    def module_of(frame) -> str:
        return frame.f_globals.get("__name__", "?").removeprefix("contrastlab.")

    def visit(frame):
        module = module_of(frame)
        if not path or path[-1] != module:
            path.append(module)

    def profile(frame, event, arg):
        if event == "return" and stack and frame is stack[-1]:
            stack.pop()
            if stack:
                visit(stack[-1])  # back in the caller's module
            return
        if event != "call" or not frame.f_code.co_filename.startswith(root):
            return
        code = frame.f_code
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        if names and names[0] == "self" and carries_config(frame.f_locals.get("self"), cell_parts, (LossParams,)):
            return  # the config's own method (total_steps, encoder_passes): it asks itself, it is not handed on
        direct = not stack or frame.f_back is stack[-1]  # not via code that got no piece of it (io's recursion)
        if direct and any(carries_config(frame.f_locals.get(n), cell_parts, (LossParams,)) for n in names):
            if stack and module_of(stack[-1]) != module_of(frame):
                calls.append((module_of(stack[-1]), module_of(frame)))
            stack.append(frame)
            visit(frame)

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return path, calls


def extra_callers(calls: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Modules the config enters from more than one module (a tree of calls has none)."""
    callers: dict[str, set[str]] = {}
    for caller, callee in calls:
        callers.setdefault(callee, set()).add(caller)
    return {m: sorted(c) for m, c in callers.items() if len(c) > 1}


def climbs(path: list[str]) -> int:
    """Entries into a module the path had already left."""
    return sum(1 for i, m in enumerate(path) if m in path[:i])


def tiny_training_job(work: Path):
    from contrastlab.plan import layout
    from contrastlab.plan.config import CellConfig, DataConfig, RuntimeConfig
    from contrastlab.data.splits import prepare
    from contrastlab.training.model import load_tokenizer
    from contrastlab.training.random_model import make_random_deberta
    from contrastlab.training.train import train

    model = make_random_deberta(work / "model", "tiny")
    prepared = work / "prepared"
    prepare(DataConfig(source="embedded", max_train=64, max_eval=32), load_tokenizer(str(model)), 32, prepared)
    cfg = CellConfig.model_validate({
        "cell": "baseline", "family": "baseline", "seed": 1, "model": {"name": str(model), "max_len": 32},
        "train": {"batch_size": 8, "grad_accum": 1, "max_steps": 2, "precision": "fp32"}})
    out = {k: work / "out" / v for k, v in layout.STAGE_FILES["train"].items()}
    state = {k: work / "out" / v for k, v in layout.TRAIN_STATE.items()}
    runtime = RuntimeConfig(device="cpu", threads=1, log_every=100)
    return train, (cfg, runtime, prepared, out, state)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="config-flow-") as tmp:
        fn, fn_args = tiny_training_job(Path(tmp))
        path, calls = module_path(fn, *fn_args)
    result = {"path": path, "modules": len(set(path)), "climbs_back": climbs(path),
              "entries": {m: path.count(m) for m in dict.fromkeys(path) if path.count(m) > 1},
              "calls": len(calls), "edges": sorted(set(calls)), "entered_from_several": extra_callers(calls),
              "train_hands_to": sorted({callee for caller, callee in calls if caller == "training.train"})}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(" -> ".join(path))
        print(f"{result['modules']} modules, {result['climbs_back']} climbs back into a module already left"
              + (f"; entered more than once: {result['entries']}" if result["entries"] else ""))
        print(f"{result['calls']} calls across modules; train.py hands the config to: {', '.join(result['train_hands_to'])}")
        print("edges: " + ", ".join(f"{a}->{b}" for a, b in result["edges"]))
        print(f"modules entered from more than one module: {result['entered_from_several'] or 'none (a tree)'}")


if __name__ == "__main__":
    main()
