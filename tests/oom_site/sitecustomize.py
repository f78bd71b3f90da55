"""Tests only: on the PYTHONPATH of a workflow's jobs while $CONTRASTLAB_TEST_MAX_MICRO_BATCH is set
(tests/oom_injection.py), so that their training runs out of memory above that micro-batch."""
import importlib.util
import os
from pathlib import Path

if os.environ.get("CONTRASTLAB_TEST_MAX_MICRO_BATCH"):
    _spec = importlib.util.spec_from_file_location("oom_injection", Path(__file__).resolve().parent.parent /
                                                   "oom_injection.py")
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.patch_on_import()
