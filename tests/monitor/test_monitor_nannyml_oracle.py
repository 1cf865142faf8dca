"""CBPE's AUC estimate equals nannyml's CBPE (dev oracle, skipped where nannyml is absent)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from _monitor_sim import draw

from fairfoundry.monitor import CBPE


@pytest.mark.filterwarnings("ignore")  # nannyml's own deprecation warnings
def test_cbpe_auc_equals_nannyml_estimate():
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # nannyml's telemetry off
    nml = pytest.importorskip("nannyml", reason="nannyml (dev oracle) is not installed",
                              exc_type=ImportError)
    rng = np.random.default_rng(8)

    def frame(n, mu, sd):
        y, s = draw(rng, n, mu, sd)
        return pd.DataFrame({"y": y, "p": s, "pred": (s >= 0.5).astype(int)})

    ref = frame(6000, 0, 1)
    chunks = [frame(2000, rng.uniform(-0.5, 0.5), rng.uniform(0.8, 1.2)) for _ in range(6)]
    est = nml.CBPE(metrics=["roc_auc"], y_pred_proba="p", y_pred="pred", y_true="y",
                   problem_type="classification_binary", chunk_size=2000)
    est.fit(ref)
    theirs = est.estimate(pd.concat(chunks, ignore_index=True).drop(columns="y")).filter(
        period="analysis").to_df()[("roc_auc", "value")].to_numpy()
    ours = CBPE(n_simulations=0).fit(ref["y"], ref["p"])
    mine = np.array([ours.estimate(c["p"], threshold=0.5)["auc"] for c in chunks])
    np.testing.assert_allclose(mine, theirs, atol=2e-3)
