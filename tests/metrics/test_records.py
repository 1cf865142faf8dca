"""Each per-group metric is declared once (name, kernel, direction, formula, source); the engine,
the worst-group rule and the docs' metric table read that one record."""

import importlib.util
from pathlib import Path

import numpy as np

from fairfoundry import metrics
from fairfoundry.metrics._kernel import ALL_STATS

ROOT = Path(__file__).resolve().parents[2]


def test_engine_and_directions_come_from_the_records():
    recs = metrics.PER_GROUP
    assert metrics.METRICS == tuple(recs)
    assert metrics.DIRECTION == {r.name: r.direction for r in recs.values()}
    confusion = set(metrics.rates_from_counts(1, 1, 1, 1))
    for r in recs.values():
        assert r.formula.strip() and r.source.strip() and r.summary.strip(), r.name
        assert r.direction in (1, -1, 0, "one", "zero"), r.name
        assert r.name in confusion if r.kernel == "confusion" else r.kernel in ALL_STATS, r.name
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    res = metrics.evaluate_groups(y, s, threshold=0.5, groups=rng.choice(["a", "b"], 200),
                                  n_bootstrap=0)
    shown = list(dict.fromkeys(res.per_group["metric"]))
    assert [m for m in shown if "_diff_to_" not in m] == list(recs)


def test_the_docs_metric_table_is_generated_from_the_records():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    table = hooks.metric_table()
    lines = [ln for ln in table.splitlines() if ln.startswith("| `")]
    assert [ln.split("`")[1] for ln in lines] == list(metrics.PER_GROUP)
    for r, ln in zip(metrics.PER_GROUP.values(), lines, strict=True):
        assert all(hooks._cell(t) in ln for t in (r.source, r.summary, r.formula))
    assert "| `fnr` | lower |" in table and "| `calibration_slope` | closer to 1 |" in table
