"""Calibration of the verdict's statistics on simulated predictions of known truth, the full grid
of issue 18: S in {1, 3, 5, 10} seeds x N in {200, 1000, 5000} test examples, for two truths
(contrastlab.analysis.simulate.Truth): "seeds" (about one accuracy point of seed-to-seed spread) and
"examples" (almost none: the seed x example noise dominates, the audit's case). Per cell: false
positives at Δ = 0, power at the reported MDD and the 95% interval's coverage there; per truth:
Holm's family-wise error over 14 null comparisons, and on the former procedure (Satterthwaite's df from
the seeds' mean square as estimated: calibration.plugin_df) at S = 3 and 5. S = 1 uses the true seed variance as a pilot
would give it (analysis.seed_sd). A planted bug runs beside it: the seeds averaged before the
test. tests/test_calibration.py runs a smaller grid of the same checks.

    python benchmarks/calibration.py [--reps 2000] [--out results/calibration.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from contrastlab.analysis import calibration as cal
from contrastlab.analysis.simulate import Truth

OUT = Path(__file__).resolve().parent / "results" / "calibration.json"
TRUTHS = {"seeds": Truth(), "examples": Truth(seed_sd=0.02, draw_sd=0.02)}
SEEDS, SIZES = [1, 3, 5, 10], [200, 1000, 5000]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="200 replicates, N <= 1000")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    reps = 200 if args.quick else args.reps
    sizes = [n for n in SIZES if n <= 1000] if args.quick else SIZES
    t0, cells, fwer, planted_fwer = time.time(), [], {}, {}
    for name, truth in TRUTHS.items():
        for n in sizes:
            pilot = cal.one_seed_variance(np.random.default_rng(n), n, reps=100, truth=truth)
            for s in SEEDS:
                rng = np.random.default_rng(1000 * s + n)
                kw = {"seed_var": pilot} if s == 1 else {}
                fp = cal.null_rate(rng, s, n, reps, truth=truth, **kw)
                mdd = cal.reported_mdd(rng, s, n, max(200, reps // 5), truth=truth, **kw)
                power, coverage = cal.power_and_coverage(rng, s, n, mdd, reps, truth=truth, **kw)
                planted = cal.null_rate(rng, s, n, reps, truth=truth, test=cal.seeds_averaged_first) if s > 1 else None
                cells.append({"truth": name, "seeds": s, "n": n, "false_positives": fp, "mdd": mdd, "power": power,
                              "coverage": coverage, "planted_false_positives": planted})
                print(cells[-1], flush=True)
        fwer[name] = {s: cal.familywise_error(np.random.default_rng(s), s, 1000, max(300, reps // 3), truth=truth)
                      for s in (3, 5, 10)}
        print(name, "fwer", fwer[name], flush=True)
        planted_fwer[name] = {s: cal.familywise_error(np.random.default_rng(s), s, 1000, max(300, reps // 3),
                                                      truth=truth, test=cal.plugin_df) for s in (3, 5)}
        print(name, "planted fwer", planted_fwer[name], flush=True)
    rng = np.random.default_rng(12)
    rec = cal.recommended_seeds(rng, 3, 1000, 0.012, 300)
    rec_power, _ = cal.power_and_coverage(rng, rec, 1000, 0.012, reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"reps": reps, "cells": cells, "fwer": fwer, "planted_fwer": planted_fwer, "recommended_seeds": rec,
                                    "recommended_power": rec_power, "wall_s": time.time() - t0,
                                    "bands": {"false_positives": [0.03, 0.07], "coverage": [0.93, 0.97],
                                              "power": [0.70, 0.90], "fwer": 0.06, "recommended_power": 0.75}},
                                   indent=2))
    print(f"written {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
