"""Where a result came from: the code behind each job, and the machine and libraries it ran on.

Code. Snakemake reruns a job when its params change, but it does not look inside an imported
package. Each rule therefore gets a `code` param: `code_hash(entry, ...)`, a hash of every module
of contrastlab that its entry points import, directly or not (their import closure, read from
the source with `ast`, without importing anything). A training job's entries are its rule script
and its cell's family objective, which the training loop imports by name, so editing a helper
that only the token family imports reruns the token cells and nothing else. The hash is of each
module's syntax tree without docstrings: reformatting, comments and docstrings rerun nothing.

Machine. `run_record(...)` is what each cell's metrics.json records under "provenance".
"""
from __future__ import annotations

import ast
import functools
import hashlib
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = "contrastlab"


def _module_file(module: str) -> Path | None:
    """The source file of a contrastlab module (a package's __init__.py), None if outside it."""
    if module != ROOT and not module.startswith(ROOT + "."):
        return None
    base = PACKAGE.joinpath(*module.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [ROOT, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=None)
def _imports(path: Path, module: str | None) -> frozenset[str]:
    """The contrastlab modules `path` imports anywhere in it (a lazy import inside a function
    counts: the code may run). `module`: the file's own dotted name, for relative imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = None
    if module is not None:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import x`: x may be a module
    out = set()
    for name in found:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))  # a submodule runs its parents
    return frozenset(m for m in out if _module_file(m) is not None)


def import_closure(*entries: str | Path) -> list[Path]:
    """Every contrastlab source file that the entries import, directly or not. An entry is a
    module name (contrastlab.train) or a script path (workflow/scripts/train.py)."""
    seen: dict[str, Path] = {}
    todo = []
    for entry in entries:
        if isinstance(entry, Path) or str(entry).endswith(".py"):
            todo += sorted(_imports(Path(entry), None))
        else:
            todo.append(str(entry))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = _module_file(module)
        if path is None:
            continue
        seen[module] = path
        todo += sorted(_imports(path, module) - set(seen))
    return sorted(set(seen.values()))


@functools.lru_cache(maxsize=None)
def _file_digest(path: Path) -> str:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # a docstring does not change what the code does
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


@functools.lru_cache(maxsize=None)  # the DAG build asks once per job: one parse per file is enough
def code_hash(*entries: str | Path) -> str:
    """Hash of the import closure of `entries` (see the module docstring)."""
    h = hashlib.sha256()
    for path in import_closure(*entries):
        h.update(path.relative_to(PACKAGE).as_posix().encode())
        h.update(_file_digest(path).encode())
    return h.hexdigest()[:12]


def clear_caches() -> None:
    """Forget every parse and hash (after the source changed within one process)."""
    for fn in (_imports, _file_digest, code_hash):
        fn.cache_clear()


# ---- the machine -------------------------------------------------------------------------------

def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The project's commit (with "-dirty" when the package's files differ from it), if in a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(PACKAGE)], cwd=PACKAGE,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def run_record(device, precision: str, runtime) -> dict:
    """Versions, device, precision, determinism, commit and host of a job (torch imported)."""
    import torch

    cuda = device.type == "cuda"
    return {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": _version("transformers"),
        "peft": _version("peft"), "contrastlab_commit": git_commit(), "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
        "device_count": torch.cuda.device_count() if cuda else 1,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "precision": precision, "tf32": bool(cuda and torch.backends.cuda.matmul.allow_tf32),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark), "threads": torch.get_num_threads(),
        "compile": bool(runtime.compile), "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "argv0": os.path.basename(sys.argv[0]) if sys.argv else None,
    }
