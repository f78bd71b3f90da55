"""Paired test predictions of known truth, to check the statistics of `contrastlab.analysis.stats` by
simulation (tests/test_calibration.py, benchmarks/calibration.py).

A replicate is one study of two arms, each run with S seeds, scored on N test examples drawn
afresh. On the logit scale the chance that a run gets example i right is

    arm a:  mu     + z_i       + u_a,s + w_a,s
    arm b:  mu + b + z_i + v_i + u_b,s + w_b,s

z_i: the example's difficulty (shared: what makes paired examples informative); v_i: how much
arm b's method helps or hurts that example; u: the seed's effect on a run (initialisation, data
order); w: the train-draw effect (the few-shot sample or label-noise draw of seed s; paired seeds
share part `draw_shared` of it). The true Δ is the expected accuracy difference over examples,
seeds and draws; `shift_for` finds the b that gives a wanted Δ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)


@dataclass(frozen=True)
class Truth:
    base: float = 0.8  # arm a's expected accuracy
    difficulty: float = 2.5  # sd of z_i: arms disagree on ~16% of examples
    arm_example: float = 0.5  # sd of v_i
    seed_sd: float = 0.12  # sd of u: about one point of accuracy from seed to seed
    draw_sd: float = 0.08  # sd of w
    draw_shared: float = 0.5  # correlation of w between paired seeds of the two arms

    def _tau(self, arm_b: bool) -> float:
        return math.sqrt(self.difficulty ** 2 + self.seed_sd ** 2 + self.draw_sd ** 2
                         + (self.arm_example ** 2 if arm_b else 0.0))

    def _mean(self, mu: float, tau: float) -> float:
        return float(np.sum(_WEIGHTS * expit(mu + tau * _NODES)) / math.sqrt(2 * math.pi))

    def mu(self) -> float:
        return brentq(lambda m: self._mean(m, self._tau(False)) - self.base, -20, 20)

    def shift_for(self, delta: float) -> float:
        """The logit shift b of arm b for which E acc(b) − E acc(a) = delta."""
        mu, tau_b = self.mu(), self._tau(True)
        return brentq(lambda b: self._mean(mu + b, tau_b) - self.base - delta, -20, 20)


def simulate(rng: np.random.Generator, reps: int, seeds: int, n: int, delta: float = 0.0, truth: Truth = Truth(),
             seeds_b: int | None = None, arms: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """-> (ref [reps, seeds, n], cells [arms, reps, seeds_b, n]) 0/1 uint8: `arms` cells, each
    with true Δ = delta to the shared reference. Seeds pair (the train draw partly shared) when
    seeds_b is None or equal to seeds."""
    sb = seeds if seeds_b is None else seeds_b
    paired = sb == seeds
    mu, shift = truth.mu(), truth.shift_for(delta)
    z = rng.normal(0, truth.difficulty, (reps, 1, n))
    g = rng.normal(0, 1, (reps, max(seeds, sb), 1))  # the shared part of each seed's train draw
    rho = truth.draw_shared

    def draw(s, shared):
        own = rng.normal(0, 1, (reps, s, 1))
        w = rho * g[:, :s] + math.sqrt(1 - rho ** 2) * own if shared else own
        return truth.seed_sd * rng.normal(0, 1, (reps, s, 1)) + truth.draw_sd * w

    ref = (rng.random((reps, seeds, n)) < expit(mu + z + draw(seeds, True))).astype(np.uint8)
    cells = np.empty((arms, reps, sb, n), np.uint8)
    for k in range(arms):
        v = rng.normal(0, truth.arm_example, (reps, 1, n))
        cells[k] = rng.random((reps, sb, n)) < expit(mu + shift + z + v + draw(sb, paired))
    return ref, cells


def replicate(fn, rng: np.random.Generator, reps: int, seeds: int, n: int, delta: float = 0.0,
              truth: Truth = Truth(), seeds_b: int | None = None, arms: int = 1, budget: int = 4_000_000):
    """fn(ref [r, S, N], cells [arms, r, S_b, N]) -> dict of [r] arrays (or of [arms, r]) over
    `reps` replicates, in chunks of at most `budget` predictions per arm; the dicts concatenated."""
    chunk = max(1, budget // (max(seeds, seeds_b or seeds) * n))
    parts = []
    for start in range(0, reps, chunk):
        ref, cells = simulate(rng, min(chunk, reps - start), seeds, n, delta, truth, seeds_b, arms)
        parts.append(fn(ref, cells))
    return {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0] if np.ndim(parts[0][k])}
