"""Generated data of the curation tests."""

from __future__ import annotations

import numpy as np


def rings(sizes=(20000, 200, 1000, 500, 8000), *, seed=0):
    """Five 2-D rings (radius 1, centres 3 apart) with the given numbers of points."""
    rng = np.random.default_rng(seed)
    X, lab = [], []
    for r, n in enumerate(sizes):
        th = rng.uniform(0, 2 * np.pi, n)
        X.append(np.array([3.0 * r, 0.0]) + np.c_[np.cos(th), np.sin(th)] + rng.normal(0, 0.05, (n, 2)))
        lab += [r] * n
    return np.concatenate(X).astype(np.float32), np.array(lab)
