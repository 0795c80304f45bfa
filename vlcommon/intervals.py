"""95% confidence intervals for accuracies and for differences between variants, shared by the LLaVA and
ManagerTower reports.

* :func:`wilson`: the Wilson score interval of a proportion (correct at small n and near 0 or 1, where the normal
  interval is not).
* :func:`paired_bootstrap`: the percentile bootstrap interval of the mean difference between two variants scored
  on the same documents, resampling documents (pairs stay together, so the variance the shared documents explain
  cancels).

A delta is *significant* when its interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero (for a difference)."""
        return self.low > 0 or self.high < 0

    def scaled(self, factor: float) -> Interval:
        return Interval(self.value * factor, self.low * factor, self.high * factor)


def wilson(successes: float, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of ``successes / n``."""
    if n <= 0:
        raise ValueError(f"wilson: n={n} must be positive")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson: successes={successes} must be in 0..{n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The interval holds p exactly; min/max keep float rounding at p = 0 or 1 from putting p a hair outside it.
    return Interval(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> Interval:
    """The mean of ``a - b`` (paired by position) with its percentile bootstrap interval over documents."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_bootstrap needs two non-empty score lists of one length, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)  # (n,)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)  # (resamples,)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(diff.mean()), float(low), float(high))
