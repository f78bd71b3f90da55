"""Run a rule's Snakemake script (workflow/scripts/<stage>.py of either tree) as its job runs it,
and record the time at the end of the first forward pass of the encoder, then exit at once.

    python benchmarks/_startup_driver.py SPEC.json

SPEC: {"script": path, "result": path, "snakemake": {"params": {...}, "input": {...},
"output": {...}, "log": [...], "threads": n, "config": {...}}}. The `snakemake` object the script
sees is built from it (what Snakemake's script preamble would hand the script), so the script
runs unchanged; which contrastlab it imports is PYTHONPATH's (the parent sets it). Only the
preamble itself (unpickling Snakemake's object, which imports snakemake) is not run: it costs
the same before and after.

Result: the wall clock (time.time()) at this script's first line, after `import torch` (the
adapters' first import either way), and at the end of the first forward of the encoder (the
first module with a `base_model_prefix`, i.e. a transformers PreTrainedModel, whose output has
`last_hidden_state`), with the top-level modules in sys.modules at that moment.
"""
import time

T_START = time.time()
import json
import os
import runpy
import sys

import torch

T_TORCH = time.time()
SPEC = json.load(open(sys.argv[1]))


class Named(list):
    """Snakemake's Namedlist, as far as the adapters use it: positional and by name."""

    def __init__(self, d):
        d = dict(d) if isinstance(d, dict) else {str(i): v for i, v in enumerate(d)}
        super().__init__(d.values())
        self._d = d

    def __getattr__(self, key):
        try:
            return self.__dict__["_d"][key]
        except KeyError:
            raise AttributeError(key) from None

    def items(self):
        return self._d.items()

    def keys(self):
        return self._d.keys()

    def get(self, key, default=None):
        return self._d.get(key, default)


class FakeSnakemake:
    def __init__(self, d):
        self.params, self.input, self.output = Named(d["params"]), Named(d["input"]), Named(d["output"])
        self.log, self.threads, self.config = Named(d["log"]), d["threads"], d.get("config", {})
        self.wildcards = Named(d.get("wildcards", {}))


fired = []


def first_forward(module, args, output):
    if fired or getattr(module, "base_model_prefix", None) is None or not hasattr(output, "last_hidden_state"):
        return
    fired.append(True)
    t = time.time()
    import contrastlab

    with open(SPEC["result"], "w") as f:
        json.dump({"t_start": T_START, "t_after_torch": T_TORCH, "t_first_forward": t,
                   "modules": sorted({m.split(".")[0] for m in sys.modules}), "n_modules": len(sys.modules),
                   "contrastlab": os.path.dirname(contrastlab.__file__),
                   "output_shape": list(output.last_hidden_state.shape)}, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


torch.nn.modules.module.register_module_forward_hook(first_forward)
runpy.run_path(SPEC["script"], init_globals={"snakemake": FakeSnakemake(SPEC["snakemake"])}, run_name="__main__")
sys.exit("the job ended without a forward pass of the encoder")
