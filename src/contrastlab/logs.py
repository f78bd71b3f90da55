"""Logging for stage jobs: progress lines to the job's log file (so `tail -f` shows how far a
cell is) and to stderr, with the traceback of a failure in both."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path


@contextlib.contextmanager
def job_logging(log_file: str | Path | None):
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        yield logging.getLogger("contrastlab")
    except BaseException:
        logging.getLogger("contrastlab").exception("job failed")
        raise
    finally:
        for h in handlers:
            h.flush()


def export_import_path(src: str) -> None:
    """Put `src` first on PYTHONPATH for the jobs that Snakemake starts (its own rule scripts)."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
