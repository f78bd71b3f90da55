"""Where a result came from: the code behind each job, and the machine and libraries it ran on.

Code. Snakemake reruns a job when its params change, but it does not look inside an imported
package. Each rule therefore gets a `code` param: `code_hash(entry, ...)`, a hash of every module
of contrastlab that its entry points import, directly or not (their import closure, read from
the source with `ast`, without importing anything). An entry is a rule script or a module the job
imports by name (importlib): a training job's family objective, the aggregate's family packages
and report modules; an entry brings its parent packages, which Python runs first. So editing a
helper that only the token family imports reruns the token cells and nothing else.

The hash is of what runs: each module's syntax tree without its prose, i.e. docstrings, comments
(never in the tree), and the `description=` / `help=` strings of pydantic Fields and argparse. It
also leaves out the defaults of pydantic `Field(...)`s: every job receives its config resolved,
defaults filled in, as a param (contrastlab.plan.grid), so a changed default reruns exactly the cells
whose resolved value changed. Every other string and constant stays in.

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

PACKAGE = Path(__file__).resolve().parents[1]  # contrastlab/
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
    return frozenset(m for name in found for m in _with_parents(name) if _module_file(m) is not None)


def _with_parents(module: str) -> list[str]:
    """`module` and the packages above it: importing a submodule runs its parents' __init__."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_closure(*entries: str | Path) -> list[Path]:
    """Every contrastlab source file that the entries import, directly or not. An entry is a
    module name (contrastlab.training.train) or a script path (workflow/scripts/train.py)."""
    seen: dict[str, Path] = {}
    todo = []
    for entry in entries:
        if isinstance(entry, Path) or str(entry).endswith(".py"):
            todo += sorted(_imports(Path(entry), None))
        else:
            todo += _with_parents(str(entry))
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


PROSE_KEYWORDS = ("description", "help")  # pydantic Field, argparse: text for readers only
DEFAULT_KEYWORDS = ("default", "default_factory")


class _LeaveOutProse(ast.NodeTransformer):
    """Drops docstrings, prose keywords and pydantic Field defaults (see the module docstring)."""

    def __init__(self, field_names: set[str]):
        self.field_names = field_names  # what `pydantic.Field` is called in this module

    def generic_visit(self, node):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # a docstring does not change what the code does
        return super().generic_visit(node)

    def visit_Call(self, node):
        node.keywords = [k for k in node.keywords if not (
            k.arg in PROSE_KEYWORDS and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str))]
        if isinstance(node.func, ast.Name) and node.func.id in self.field_names:
            node.args = node.args[1:]  # the default: it reaches the job in its resolved config
            node.keywords = [k for k in node.keywords if k.arg not in DEFAULT_KEYWORDS]
        return self.generic_visit(node)


def _field_names(tree: ast.Module) -> set[str]:
    return {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module == "pydantic" for a in node.names if a.name == "Field"}


@functools.lru_cache(maxsize=None)
def _file_digest(path: Path) -> str:
    tree = ast.parse(path.read_text(), str(path))
    tree = _LeaveOutProse(_field_names(tree)).visit(tree)
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
