"""Planted group-dependent hallucination rates (5 % vs 15 %) are recovered with honest CIs.

Each simulated generated report is its reference, rewritten, with one hallucinated finding
planted with probability 5 % (group F) or 15 % (group M). The labeler must find exactly the
planted hallucinations, and the 95 % CIs (clustered by patient) must cover the planted rates in
at least 90 % of 100 simulations.
"""

import numpy as np
import pandas as pd

from fairfoundry.hallucination import evaluate_reports, hallucination_table, label_reports
from fairfoundry.metrics import evaluate_group_means

# (reference, faithful rewrite, rewrite with one planted hallucination)
POOL = [
    ("No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
     "No acute process. Small right pneumothorax."),
    ("No pleural effusion. Heart size is normal.", "Heart size is normal. No effusion.",
     "Pleural effusion. Heart size is normal."),  # negation flip
    ("Mild cardiomegaly. No pneumothorax.", "Mild cardiomegaly without pneumothorax.",
     "Mild cardiomegaly. No pneumothorax. Left lower lobe consolidation."),
    ("Left basilar atelectasis.", "Atelectasis at the left base.",
     "Left basilar atelectasis. Right rib fracture."),
    ("Endotracheal tube in place. Lungs are clear.", "ET tube in standard position. Clear lungs.",
     "Endotracheal tube in place. Pulmonary edema."),
    ("Small bilateral pleural effusions. No pneumothorax.",
     "Bilateral small effusions. No pneumothorax.",
     "Small bilateral pleural effusions. Pneumothorax."),  # negation flip
    ("No focal consolidation.", "No consolidation.", "No focal consolidation. Lung nodule."),
    ("Stable mild cardiomegaly.", "Mild cardiomegaly, stable.",
     "Stable mild cardiomegaly. Right upper lobe pneumonia."),
]


def test_each_planted_hallucination_is_found_and_nothing_else():
    ref = label_reports([p[0] for p in POOL])
    faithful = hallucination_table(label_reports([p[1] for p in POOL]), ref)
    planted = hallucination_table(label_reports([p[2] for p in POOL]), ref)
    assert faithful["n_hallucinated"].tolist() == [0] * len(POOL)
    assert planted["n_hallucinated"].tolist() == [1] * len(POOL)
    assert planted["n_contradicted"].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]


def _simulate(rng, n_patients=300, per_patient=2, rates=(0.05, 0.15)):
    n = n_patients * per_patient
    patient = np.repeat(np.arange(n_patients), per_patient)
    sex = np.where(patient % 2 == 0, "F", "M")
    item = rng.integers(0, len(POOL), n)
    planted = rng.random(n) < np.where(sex == "F", rates[0], rates[1])
    return pd.DataFrame({
        "patient_id": patient, "sex": sex, "item": item,
        "reference": [POOL[k][0] for k in item],
        "generated": [POOL[k][2] if p else POOL[k][1] for k, p in zip(item, planted,
                                                                     strict=True)],
        "planted": planted.astype(float)})


def test_ci_covers_planted_rates_in_at_least_90_percent_of_100_simulations():
    # the pool is labelled once (the labeler is deterministic; the test above checks it finds
    # exactly the planted hallucination of every pool item); each simulation draws reports
    ref_l, faith_l, plant_l = (label_reports([p[k] for p in POOL]).to_numpy() for k in range(3))
    columns = label_reports(["x"]).columns
    rng = np.random.default_rng(2024)
    covered = {"F": 0, "M": 0}
    sims = 100
    for s in range(sims):
        df = _simulate(rng)
        item, planted = df["item"].to_numpy(), df["planted"].to_numpy() > 0
        gen = np.where(planted[:, None], plant_l[item], faith_l[item])
        t = hallucination_table(pd.DataFrame(gen, columns=columns),
                                pd.DataFrame(ref_l[item], columns=columns))
        np.testing.assert_array_equal(t["hallucination"], df["planted"])  # found exactly
        codes = (df["sex"] == "M").to_numpy().astype(np.int64)
        r = evaluate_group_means(t[["hallucination"]].to_numpy(), groups=codes,
                                 group_names=["F", "M"], metric_names=["hallucination"],
                                 cluster=df["patient_id"].to_numpy(), n_bootstrap=200, seed=s)
        for g, rate in (("F", 0.05), ("M", 0.15)):
            row = r.per_group.query("group == @g").iloc[0]
            covered[g] += row.ci_low <= rate <= row.ci_high
    assert covered["F"] / sims >= 0.90 and covered["M"] / sims >= 0.90, covered


def test_end_to_end_evaluate_reports_recovers_the_gap(tmp_path):
    df = _simulate(np.random.default_rng(7), n_patients=600)
    ev = evaluate_reports(df, generated="generated", reference="reference", sensitive=["sex"],
                          cluster="patient_id", n_bootstrap=300, n_permutations=200, seed=1)
    h = ev.get("hallucination", attribute="sex").set_index("group")
    assert h.loc["F", "ci_low"] <= 0.05 <= h.loc["F", "ci_high"]
    assert h.loc["M", "ci_low"] <= 0.15 <= h.loc["M", "ci_high"]
    gap = ev.summary_table.set_index("metric").loc["hallucination_gap"]
    assert gap["ci_low"] > 0 and gap["p_value"] < 0.05 and gap["detail"] == "M - F"
    assert any(s.startswith("hallucination differs by sex") for s in ev.evidence["headlines"])
