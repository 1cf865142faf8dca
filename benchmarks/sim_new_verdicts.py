"""Null simulations of the verdicts added in the third wave (no peer implements them: no ratio).

Each part draws data where the verdict's claim is false and counts how often it is made anyway:

- ``curate slices``: SliceLine "underperforms" with errors unrelated to every column
  (family-wise error 0.05 over the slice lattice);
- ``monitor drift``: ``embedding_drift`` = 1 (the DeLong interval of the domain classifier's AUC
  wholly above 0.55) between two windows of one distribution;
- zero-shot hallucination in ``fit``: "differs by sex" headlines with equal planted rates;
- ``audit.html``: "is under-represented" when patients are drawn with the reference shares.

    PYTHONPATH=src python benchmarks/sim_new_verdicts.py [--reps 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hallucination"))


def sliceline_null(reps: int) -> float:
    from fairfoundry.curate import sliceline_slices

    rng = np.random.default_rng(1)
    flagged = 0
    for _ in range(reps):
        n = 1500
        df = pd.DataFrame({"site": rng.choice(["a", "b", "c"], n), "sex": rng.choice(["F", "M"], n),
                           "view": rng.choice(["AP", "PA", "LL"], n), "age": rng.uniform(20, 90, n)})
        e = (rng.uniform(size=n) < 0.2).astype(int)
        res = sliceline_slices(df, ["site", "sex", "view", "age"], e, k=5, max_level=2)
        flagged += int((res.table["verdict"] == "underperforms").any())
    return flagged / reps


def drift_null(reps: int) -> float:
    from fairfoundry.monitor._drift import domain_classifier_auc

    rng = np.random.default_rng(2)
    flagged = 0
    for _ in range(reps):
        ref, cur = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
        _, low, _ = domain_classifier_auc(ref, cur, return_ci=True)
        flagged += int(low > 0.55)
    return flagged / reps


def hallucination_null(reps: int) -> float:
    from test_zeroshot import _planted  # the fixture of tests/hallucination/test_zeroshot.py

    stated = 0
    for k in range(reps):
        r = _planted(1000 + k, (0.15, 0.15))
        stated += int(any("differs by sex" in t for t in r.evidence["headlines"]))
    return stated / reps


def audit_null(reps: int) -> float:
    from fairfoundry.audit import audit_manifest

    rng = np.random.default_rng(3)
    said = 0
    for _ in range(reps):
        sex = rng.choice(["female", "male"], 300)  # one image per patient, shares 0.5 / 0.5
        m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(300)],
                          "patient_id": [f"p{i}" for i in range(300)], "sex": sex})
        html = audit_manifest(m, sensitive=["sex"],
                              reference_population={"sex": {"female": 0.5, "male": 0.5}}).to_html()
        said += int("is under-represented" in html)
    return said / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    for name, fn, nominal in (("curate slices: 'underperforms'", sliceline_null, 0.05),
                              ("monitor drift: embedding_drift = 1", drift_null, 0.025),
                              ("fit zero-shot: 'differs by sex' headline", hallucination_null, 0.05),
                              ("audit.html: 'is under-represented'", audit_null, 0.05)):
        rate = fn(args.reps)
        se = np.sqrt(max(rate * (1 - rate), 1e-9) / args.reps)
        print(f"{name}: {rate:.3f} of {args.reps} null data sets (+- {se:.3f}; nominal <= {nominal})")


if __name__ == "__main__":
    main()
