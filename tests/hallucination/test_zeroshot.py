"""Zero-shot hallucination: confident positive CLIP calls on absent findings, by group."""

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.hallucination import zero_shot_hallucination

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_clip():
    # the tiny random CLIP of tests/adapt/test_images_zeroshot.py
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(embed_dim=16, vision_cfg={"layers": 1, "width": 32, "patch_size": 8,
                                           "image_size": 32, "head_width": 16},
                 text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                           "layers": 1})
    model.eval()
    return model, open_clip.get_tokenizer("ViT-B-32")


def test_rate_of_confident_positive_zero_shot_calls_on_absent_findings(tiny_clip):
    from fairfoundry.adapt import text_classifier, zero_shot_scores

    model, tok = tiny_clip
    findings = {"effusion": ["no pleural effusion", "pleural effusion"],
                "edema": ["no pulmonary edema", "pulmonary edema"]}
    n = 120
    with torch.no_grad():
        v = model.encode_image(torch.randn(n, 3, 32, 32)).float().numpy()
    scores = np.column_stack([
        zero_shot_scores(v, text_classifier(model.encode_text, tok, names), logit_scale=20.0)[:, 1]
        for names in findings.values()])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (n, 2))
    sex = rng.choice(["female", "male"], n)
    codes = (sex == "male").astype(np.int64)
    tau = float(np.quantile(scores[:, 0], 0.6))  # a fixed confidence level for the test
    r = zero_shot_hallucination(scores, y, groups=codes, group_names=["female", "male"],
                                threshold=tau, finding_names=list(findings), n_bootstrap=200,
                                n_permutations=50, seed=0)
    df = pd.DataFrame({"sex": sex, "s0": scores[:, 0], "y0": y[:, 0], "s1": scores[:, 1],
                       "y1": y[:, 1]})
    for g in ("female", "male"):
        sub = df[(df.sex == g) & (df.y0 == 0)]
        row = r.per_group.query("metric == 'confident_false_positive:effusion' and group == @g")
        assert row["estimate"].iloc[0] == pytest.approx((sub.s0 >= tau).mean())
        assert row["n"].iloc[0] == len(sub)
        assert row["ci_low"].iloc[0] <= row["estimate"].iloc[0] <= row["ci_high"].iloc[0]
        sub = df[df.sex == g]
        absent = (sub[["y0", "y1"]] == 0).to_numpy()
        conf = (sub[["s0", "s1"]] >= tau).to_numpy() & absent
        want = conf.any(axis=1)[absent.any(axis=1)].mean()
        got = r.per_group.query("metric == 'confident_false_positive_any' and group == @g")
        assert got["estimate"].iloc[0] == pytest.approx(want)
    assert 0 < r.estimate("confident_false_positive:effusion", "overall") < 1
    assert "confident_false_positive_any_gap" in set(r.summary["metric"])
    assert r.config["threshold"] == tau


def test_bad_inputs():
    g = np.array([0, 1])
    with pytest.raises(FairfoundryError, match="probabilities"):
        zero_shot_hallucination([1.5, 0.2], [0, 1], groups=g, group_names=["a", "b"])
    with pytest.raises(FairfoundryError, match="0/1"):
        zero_shot_hallucination([0.5, 0.2], [0, 2], groups=g, group_names=["a", "b"])
    with pytest.raises(FairfoundryError, match="same shape"):
        zero_shot_hallucination([[0.5, 0.2]], [0, 1], groups=g, group_names=["a", "b"])


def _planted(seed, rates, n=300, n_bootstrap=100):
    from fairfoundry.hallucination import zero_shot_hallucination_table

    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    y = rng.binomial(1, 0.2, n)  # images with the finding are left out of the rate
    p = np.where(sex == "male", rates[1], rates[0])
    s = np.where(rng.random(n) < p, rng.uniform(0.9, 1.0, n), rng.uniform(0.0, 0.9, n))
    return zero_shot_hallucination_table(pd.DataFrame({"sex": sex}), s, y, sensitive=["sex"],
                                         finding_names=["effusion"], n_bootstrap=n_bootstrap,
                                         seed=seed, id_col=None)


def test_table_recovers_planted_rates_and_its_gap_has_the_claimed_error_rate():
    """Coverage: planted 5 % vs 15 % confident false positives (about 200 images without the
    finding per group), 95 % CIs cover each in >= 90 % of 100 simulations (93 % and 92 % here;
    with ~120 images per group the 5 % rate, ~6 events, is covered 89 % of the time: percentile
    intervals are short of nominal with few events, which is why such groups read "too few to
    judge"). Null: equal rates (15 %), the gap's CI excludes 0 in about 5 % (<= 12 %)."""
    covered = np.zeros(2, dtype=int)
    for k in range(100):
        b = _planted(k, (0.05, 0.15), n=500).by_group.set_index("group")
        for j, (g, rate) in enumerate((("female", 0.05), ("male", 0.15))):
            covered[j] += int(b.loc[g, "ci_low"] <= rate <= b.loc[g, "ci_high"])
    assert (covered >= 90).all(), covered
    stated = 0
    for k in range(100):
        r = _planted(1000 + k, (0.15, 0.15))
        stated += sum("differs by sex" in t for t in (*r.evidence["headlines"], *r.evidence["too_few_to_judge"]))
    assert stated <= 12, stated


def test_table_counts_events_and_says_too_few_to_judge():
    r = _planted(0, (0.02, 0.3), n=200, n_bootstrap=50)
    by = r.by_group.set_index("group")
    assert {"events", "judgement"} <= set(r.by_group.columns)
    for g in ("female", "male", "overall"):
        e, n = by.loc[g, "events"], by.loc[g, "n"]
        assert by.loc[g, "estimate"] == pytest.approx(e / n)
        assert by.loc[g, "judgement"].startswith("too few to judge") == (min(e, n - e) < 10)
    assert by.loc["female", "judgement"].startswith("too few to judge")  # about 2 events in 80 images
    assert by.loc["male", "judgement"] == ""
    # the female-male gap has a CI above 0 but too few female events: not a headline
    assert not r.evidence["headlines"] and any("differs by sex" in t for t in r.evidence["too_few_to_judge"])
