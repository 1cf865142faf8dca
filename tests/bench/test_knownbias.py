"""The known-bias benchmark: the injected biases are there in train/val, and absent from test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.bench import inject_marker, make_knownbias_features, make_knownbias_images


def test_feature_level_biases_are_injected_only_outside_test():
    kb = make_knownbias_features(n=20000, d=8, seed=0, p_underdiagnosis=0.4)
    f = kb.frame
    test = f["split"] == "test"
    assert (f.loc[test, "y"] == f.loc[test, "y_clean"]).all()  # clean test labels
    sick_minority = (~test) & (f["group"] == "minority") & (f["y_clean"] == 1)
    assert (1 - f.loc[sick_minority, "y"].mean()) == pytest.approx(0.4, abs=0.03)
    assert (f.loc[(~test) & (f["group"] == "majority"), "y"] == f.loc[(~test) & (f["group"] == "majority"), "y_clean"]).all()
    shortcut = kb.X[:, -1]
    maj_dev = ((~test) & (f["group"] == "majority")).to_numpy()
    assert np.corrcoef(shortcut[maj_dev], f["y"][maj_dev])[0, 1] > 0.6
    assert abs(np.corrcoef(shortcut[test.to_numpy()], f["y_clean"][test])[0, 1]) < 0.05
    again = make_knownbias_features(n=20000, d=8, seed=0, p_underdiagnosis=0.4)
    assert np.array_equal(kb.X, again.X)
    with pytest.raises(FairfoundryError):
        make_knownbias_features(d=2)
    # only diseased patients are flipped, only to healthy, only in the noisy group
    flipped = f["y"] != f["y_clean"]
    assert (f.loc[flipped, "y_clean"] == 1).all() and (f.loc[flipped, "group"] == "minority").all()
    # strict variant: the shortcut exists in the training split only; validation is clean of it
    strict = make_knownbias_features(n=20000, d=8, seed=0, spurious_splits=("train",))
    sf = strict.frame
    for split, lo, hi in (("train", 0.6, 1.0), ("val", -0.05, 0.05)):
        m = ((sf["split"] == split) & (sf["group"] == "majority")).to_numpy()
        assert lo < np.corrcoef(strict.X[m, -1], sf["y"][m])[0, 1] < hi, split
    with pytest.raises(FairfoundryError, match="spurious_splits"):
        make_knownbias_features(spurious_splits=("train", "test"))


def test_marker_is_a_bright_corner_square():
    img = np.zeros((40, 40), dtype=np.uint8)
    out = inject_marker(img, size=4)
    assert out[2:6, 2:6].min() == 255 and out.sum() == 16 * 255 and img.sum() == 0
    rgb = inject_marker(np.zeros((20, 20, 3), dtype=np.float32), corner="bottom-right", size=2)
    assert rgb[-3:-1, -3:-1].min() == 1.0


@pytest.fixture(scope="module")
def nih_shortcut(tmp_path_factory):
    from fairfoundry.datasets import nih_images

    mp = nih_images()
    m = pd.read_csv(mp)
    out = tmp_path_factory.mktemp("nih_kb")
    frame = make_knownbias_images(m, label="No_Finding", group_col="sex", marked_group="male", out_dir=out,
                                  image_root=mp.parent, size_px=32, seed=0)
    return out, frame


def test_image_level_marker_only_in_marked_group_positives_outside_test(nih_shortcut):
    from fairfoundry.data import load_image

    out, f = nih_shortcut
    assert len(f) == 300 and (out / "manifest.csv").exists()
    assert f.loc[f["split"] == "test", "marker"].sum() == 0
    dev = f[f["split"] != "test"]
    pos_m = dev[(dev["sex"] == "male") & (dev["No_Finding"] == 1)]
    assert pos_m["marker"].mean() > 0.7
    assert dev.loc[dev["sex"] == "female", "marker"].sum() == 0
    marked = load_image(out / f.loc[f["marker"] == 1, "path"].iloc[0])
    assert marked.shape == (32, 32) and marked[1:4, 1:4].min() == 255


def test_model_learns_the_shortcut_and_clean_test_reveals_it(nih_shortcut):
    torch = pytest.importorskip("torch")
    from fairfoundry.adapt import (
        ImageClassifier,
        ImageDataset,
        TrainConfig,
        fit_images,
        predict_images,
        selection_scores,
    )

    out, f = nih_shortcut

    def ds(split):
        s = f[f["split"] == split]
        return ImageDataset(s["path"], y=s["No_Finding"], groups=(s["sex"] == "male").astype(int), root=out,
                            size=32, mean=(0.5,) * 3, std=(0.25,) * 3, cache=True), s

    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1),
                              torch.nn.Flatten())
    (tr, _), (va, fv), (te, ft) = ds("train"), ds("val"), ds("test")
    model, res = fit_images(ImageClassifier(cnn, 1, feature_dim=16), tr, val=va,
                            config=TrainConfig(epochs=6, batch_size=32, lr=3e-3))
    sv, _ = predict_images(model, va)
    st, _ = predict_images(model, te)
    val_male = selection_scores(fv["No_Finding"].to_numpy(), sv, fv["sex"].to_numpy())["auc[male]"]
    test_male = selection_scores(ft["No_Finding"].to_numpy(), st, ft["sex"].to_numpy())["auc[male]"]
    # with the marker (validation) the marked group looks easy; on clean test the advantage is gone
    assert val_male > 0.75 and test_male < val_male - 0.2


def test_ham10000_images_take_the_same_marker(tmp_path, data_dir):
    root = data_dir / "ham10000_images_224"
    m = pd.read_csv(root / "metadata.csv").head(60).rename(columns={"file": "path"})
    m["melanoma"] = (m["dx"] == "mel").astype(int)
    m.loc[m.index[:30], "melanoma"] = 1  # enough positives for the small sample
    f = make_knownbias_images(m, label="melanoma", group_col="sex", marked_group="female", out_dir=tmp_path,
                              image_root=root, size_px=32, p_marker=1.0, seed=1)
    dev_pos_f = f[(f["split"] != "test") & (f["sex"] == "female") & (f["melanoma"] == 1)]
    assert len(dev_pos_f) and dev_pos_f["marker"].all()
    with pytest.raises(FairfoundryError, match="column 'site'"):
        make_knownbias_images(m, label="melanoma", group_col="site", marked_group="x", out_dir=tmp_path)
