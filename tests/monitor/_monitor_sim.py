"""Seeded synthetic streams for the monitoring tests (pure covariate shift, planted shifts)."""

from __future__ import annotations

import numpy as np


def draw(rng, n, mu=0.0, sd=1.0):
    """Scores whose P(y | s) never changes: x ~ N(mu, sd), y ~ Bernoulli(sigmoid(1.6x - 0.8)),
    s = sigmoid(0.7x) (uncalibrated but monotone). Moving mu / sd is pure covariate shift."""
    x = rng.normal(mu, sd, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(1.6 * x - 0.8)))).astype(int)
    return y, 1 / (1 + np.exp(-0.7 * x))


def stream(*, windows, size, seed=0, shift_group=None, shift_from=None, covariate=False,
           reference=1):
    """Prediction and label events of ``windows`` windows of ``size`` events, groups A / B
    (attribute ``grp``) in equal shares. ``shift_group`` from window ``shift_from`` on: its
    scores are degraded (concept shift: 0.3 s + 0.7 u). ``covariate``: each window after the
    first ``reference`` draws a new mean and SD of x per group (pure covariate shift)."""
    rng = np.random.default_rng(seed)
    preds, labels = [], []
    i = 0
    for w in range(windows):
        for g in ("A", "B"):
            mu, sd = (rng.uniform(-0.6, 0.6), rng.uniform(0.8, 1.3)) if covariate and w >= reference \
                else (0, 1)
            y, s = draw(rng, size // 2, mu, sd)
            if g == shift_group and shift_from is not None and w >= shift_from:
                s = 0.3 * s + 0.7 * rng.uniform(size=len(s))
            for yy, ss in zip(y, s, strict=True):
                preds.append({"sample_id": f"s{i}", "time": float(w * size + i % size),
                              "scores": {"E": float(ss)}, "attributes": {"grp": g},
                              "patient_id": f"p{i}"})
                labels.append({"sample_id": f"s{i}", "label": "E", "y": int(yy),
                               "time": float(w * size + i % size) + 0.5})
                i += 1
    order = np.argsort([p["time"] for p in preds], kind="stable")
    return [preds[k] for k in order], [labels[k] for k in order]
