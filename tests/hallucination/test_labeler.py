"""The rule-based labeler against the CheXpert labeler's published sample and our own samples."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.hallucination import OBSERVATIONS, label_report, label_reports

DATA = Path(__file__).parent / "data"


def _same(a, b) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_reproduces_the_chexpert_labelers_published_sample_labels():
    published = pd.read_csv(DATA / "chexpert_labeled_reports.csv")
    assert list(published.columns[1:]) == list(OBSERVATIONS)
    got = label_reports(published["Reports"])
    for i in range(len(published)):
        for obs in OBSERVATIONS:
            assert _same(published[obs][i], got[obs][i]), (i, obs, published[obs][i],
                                                           got[obs][i])


def test_our_sample_reports_each_rule():
    table = pd.read_csv(DATA / "our_sample_reports.csv")
    assert table["report"].nunique() >= 25
    for report, rows in table.groupby("report", sort=False):
        expected = dict.fromkeys(OBSERVATIONS, np.nan)
        expected.update(zip(rows["observation"], rows["label"], strict=True))
        got = label_report(report)
        wrong = {o: (expected[o], got[o]) for o in OBSERVATIONS if not _same(expected[o], got[o])}
        assert not wrong, (report, wrong)


@pytest.mark.parametrize("text, obs, label", [
    ("No pleural effusion.", "Pleural Effusion", 0.0),
    ("Pleural effusion.", "Pleural Effusion", 1.0),
    ("Effusion may be present.", "Pleural Effusion", -1.0),
    ("Cannot exclude a small effusion.", "Pleural Effusion", -1.0),
    ("No evidence of effusion. Pneumothorax.", "Pneumothorax", 1.0),  # negation stops at "."
])
def test_negation_and_uncertainty_cues(text, obs, label):
    assert label_report(text)[obs] == label


def test_mentions_of_one_observation_aggregate_like_chexpert():
    # negative + positive -> positive; negative + uncertain -> uncertain
    assert label_report("No left effusion. Right effusion.")["Pleural Effusion"] == 1.0
    assert label_report("No left effusion. Possible right effusion.")["Pleural Effusion"] == -1.0


@pytest.mark.parametrize("bad, what", [("", "is empty"), ("   ", "is empty"),
                                       (np.nan, "is empty"), (3.5, "is not text"),
                                       ("1234", "is not text")])
def test_empty_or_non_text_report_names_the_row(bad, what):
    with pytest.raises(FairfoundryError, match=rf"row 2 {what}"):
        label_reports(["No effusion.", bad], name="generated")
