"""What every stage job does around its work: log to its log file, keep a record of its attempts,
and fail in one line.

- Progress goes to the job's log (so `tail -f` shows how far a cell is) and to stderr.
- Each attempt is recorded in the job's attempts file (contrastlab.plan.layout.attempts_file, not an
  output: it survives a failure): when it started, how it ended and why (contrastlab.operations.failures).
  The status table (contrastlab.operations.status) and the retry policy read it.
- A retry after a failure that would only repeat itself (a non-finite loss, bad data, a bad
  config) stops at once, saying so, instead of spending another allocation. Only a retry within
  the same Snakemake run ($CONTRASTLAB_RUN) is refused: the next run, after a fix, runs anew.
- A failure with a known cause is logged as one line, `FAILED [<cause>] <message>`, with no
  traceback; anything else also gets its traceback, since it is a bug to look at.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from contrastlab.operations.failures import CAUSES, NOT_RETRIED
from contrastlab.operations.io import read_json, write_json

log = logging.getLogger("contrastlab")
RUN_VAR = "CONTRASTLAB_RUN"  # one id per Snakemake run, shared by its jobs and their retries
EXPECTED = set(CAUSES) - {"other"}  # causes whose message says it all


class NotRetried(RuntimeError):
    """The previous attempt failed in a way a retry repeats."""

    def __init__(self, message: str, cause: str):
        super().__init__(message)
        self.cause = cause


class Attempts:
    """The attempts of one job, for one fingerprint of its params (a changed config starts afresh)."""

    def __init__(self, path: str | Path | None, fingerprint: str = ""):
        self.path, self.fingerprint = (Path(path) if path else None), fingerprint
        saved = read_json(self.path) if self.path is not None and self.path.is_file() else {}
        self.records: list[dict] = saved.get("attempts", []) if saved.get("fingerprint") == fingerprint else []

    def failures(self) -> list[dict]:
        return [r for r in self.records if r.get("cause") not in (None, "done")]

    def count(self, causes) -> int:
        return sum(r.get("cause") in causes for r in self.records)

    def start(self, **info) -> dict:
        record = {"attempt": len(self.records) + 1, "started": time.time(), "host": socket.gethostname(),
                  "run": os.environ.get(RUN_VAR), "slurm_job": os.environ.get("SLURM_JOB_ID"), **info}
        self.records.append(record)
        self._write()
        return record

    def end(self, cause: str, message: str = "", **info) -> None:
        self.records[-1].update(cause=cause, message=message[:2000], ended=time.time(), **info)
        self._write()

    def _write(self) -> None:
        if self.path is not None:
            write_json(self.path, {"fingerprint": self.fingerprint, "attempts": self.records})


def export_for_jobs(src: str, config_files: str) -> None:
    """Environment every job of this run inherits (locally and through SLURM): the package's
    source first on PYTHONPATH, the config file names for the report (never a rule param, so
    renaming a config file reruns nothing), and the run's id (see the module docstring)."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    os.environ["CONTRASTLAB_CONFIG_FILES"] = config_files
    os.environ.setdefault(RUN_VAR, uuid.uuid4().hex[:12])


def _handlers(log_file):
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return handlers


@contextlib.contextmanager
def job(log_file: str | Path | None, attempts_file: str | Path | None = None, fingerprint: str = ""):
    """Run a stage job's body (see the module docstring); yields its `Attempts`."""
    from contrastlab.operations.failures import classify

    handlers = _handlers(log_file)
    attempts = Attempts(attempts_file, fingerprint)
    try:
        previous = attempts.records[-1] if attempts.records else None
        run = os.environ.get(RUN_VAR)
        if previous is not None and previous.get("cause") in NOT_RETRIED and run and previous.get("run") == run:
            raise NotRetried(f"not retried: attempt {previous['attempt']} failed with "
                             f"{CAUSES[previous['cause']]} ({previous.get('message', '')}); a retry would fail "
                             f"the same way: fix it, then run again (a changed config starts afresh)",
                             previous["cause"])
        attempts.start()
        yield attempts
        if attempts.records and attempts.records[-1].get("cause") is None:
            attempts.end("done")
    except BaseException as e:
        cause = "done" if isinstance(e, SystemExit) and e.code in (0, None) else classify(e)
        if cause != "done":
            if not isinstance(e, NotRetried):
                attempts.end(cause, str(e))
            if cause in EXPECTED:
                log.error("FAILED [%s] %s", cause, e)
            else:
                log.exception("FAILED [%s] %s", cause, e)
            for h in handlers:
                h.flush()
            if cause in EXPECTED and not isinstance(e, SystemExit):
                raise SystemExit(1) from None  # the one line above says it all: no traceback
        raise
    finally:
        for h in handlers:
            h.flush()
