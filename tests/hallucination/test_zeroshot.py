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
