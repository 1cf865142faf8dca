"""Hallucinated / omitted / contradicted findings and severity, per report and per finding."""

import numpy as np
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.hallucination import SEVERITY, hallucination_table, label_reports


def _table(gen, ref, **kw):
    return hallucination_table(label_reports(gen), label_reports(ref), **kw)


def test_a_negation_flip_is_one_hallucinated_finding_flagged_as_contradiction():
    t = _table(["Pleural effusion."], ["No pleural effusion."])
    assert t["n_hallucinated"][0] == 1 and t["hallucination"][0] == 1
    assert t["n_contradicted"][0] == 1 and t["n_omitted"][0] == 0
    assert t["hallucination_severity"][0] == SEVERITY["Pleural Effusion"]
    # the reverse flip is one omission (and one contradiction), not a hallucination
    r = _table(["No pleural effusion."], ["Pleural effusion."])
    assert (r["n_hallucinated"][0], r["n_omitted"][0], r["n_contradicted"][0]) == (0, 1, 1)


def test_absent_versus_denied_and_uncertain_references():
    t = _table(["Pneumothorax. Cardiomegaly.", "Possible pneumonia.", "No effusion."],
               ["No acute process.", "No pneumonia.", "Possible effusion."])
    # report 0: two findings asserted, neither in the reference (absent): 2 hallucinations, no flip
    assert (t["n_hallucinated"][0], t["n_contradicted"][0]) == (2, 0)
    assert t["hallucination_severity"][0] == SEVERITY["Pneumothorax"] + SEVERITY["Cardiomegaly"]
    # report 1: a generated hedge is neither a hallucination nor an omission
    assert t["n_hallucinated"][1] == 0 and t["n_omitted"][1] == 0
    # report 2: an uncertain reference finding is left out of that finding's rates
    assert np.isnan(t["hallucinated:Pleural Effusion"][2])
    assert np.isnan(t["omitted:Pleural Effusion"][2])
    # per-finding rates are defined where their condition holds
    assert t["hallucinated:Pneumothorax"][0] == 1 and np.isnan(t["omitted:Pneumothorax"][0])


def test_custom_severity_and_finding_subset():
    t = _table(["Pneumothorax. Cardiomegaly."], ["Normal."], findings=["Pneumothorax"],
               severity={"Pneumothorax": 5.0})
    assert t["n_hallucinated"][0] == 1 and t["hallucination_severity"][0] == 5.0
    assert "hallucinated:Cardiomegaly" not in t.columns


def test_bad_label_codes_name_the_row():
    gen = label_reports(["Effusion."])
    ref = gen.copy()
    ref.loc[0, "Edema"] = 2
    with pytest.raises(FairfoundryError, match="'Edema' at row 1"):
        hallucination_table(gen, ref)
