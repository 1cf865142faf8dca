"""Per-image Dice / IoU / HD95 / surface Dice against brute-force oracles; both ES-Dice scores."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from fairfoundry._errors import FairfoundryError
from fairfoundry.segmentation import (
    dice,
    es_dice_fairmedfm,
    es_dice_fairseg,
    hd95,
    iou,
    surface_dice,
)


def _blob(shape, centre, r):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= r * r


def _surface_points(m):
    # brute force: a voxel is on the surface if a face neighbour is outside (or off the grid)
    pad = np.pad(m, 1)
    inner = pad[tuple(slice(1, -1) for _ in m.shape)]
    out = np.zeros_like(m)
    for ax in range(m.ndim):
        for step in (-1, 1):
            out |= inner & ~np.roll(pad, step, axis=ax)[tuple(slice(1, -1) for _ in m.shape)]
    return np.argwhere(out)


def _oracle(p, t, spacing, tol):
    sp, st = _surface_points(p) * spacing, _surface_points(t) * spacing
    d = cdist(sp, st)
    a, b = d.min(axis=1), d.min(axis=0)
    hd = max(np.percentile(a, 95), np.percentile(b, 95))
    sd = (np.sum(a <= tol) + np.sum(b <= tol)) / (len(a) + len(b))
    return hd, sd


@pytest.mark.parametrize("shape, spacing", [((40, 40), (1.0, 1.0)), ((40, 36), (0.7, 1.3)),
                                            ((16, 18, 20), (2.0, 1.0, 0.5))])
def test_against_brute_force(shape, spacing):
    rng = np.random.default_rng(len(shape))
    for _ in range(3):
        c = [s // 2 for s in shape]
        p = _blob(shape, [x + int(rng.integers(-3, 4)) for x in c], int(rng.integers(4, 7)))
        t = _blob(shape, c, int(rng.integers(4, 7)))
        inter, total, union = (p & t).sum(), p.sum() + t.sum(), (p | t).sum()
        assert dice(p, t) == pytest.approx(2 * inter / total)
        assert iou(p, t) == pytest.approx(inter / union)
        hd, sd = _oracle(p, t, np.array(spacing), 1.5)
        assert hd95(p, t, spacing=spacing) == pytest.approx(hd)
        assert surface_dice(p, t, tolerance=1.5, spacing=spacing) == pytest.approx(sd)


def test_empty_mask_conventions():
    e, m = np.zeros((8, 8), bool), _blob((8, 8), (4, 4), 2)
    assert (dice(e, e), iou(e, e), hd95(e, e), surface_dice(e, e)) == (1.0, 1.0, 0.0, 1.0)
    assert dice(m, e) == 0 and iou(m, e) == 0 and surface_dice(m, e) == 0
    assert np.isnan(hd95(m, e))
    with pytest.raises(FairfoundryError, match="different shapes"):
        dice(np.zeros((4, 4)), np.zeros((4, 5)))


# worked fixture: groups a (Dice 0.9, 0.7, 0.8), b (0.6, 0.5), c (0.95)
DICE = [0.9, 0.7, 0.8, 0.6, 0.5, 0.95]
GROUPS = ["a", "a", "a", "b", "b", "c"]
# by hand: group means 0.8, 0.55, 0.95; overall mean 4.45 / 6 = 0.741666...
# population std of (0.8, 0.55, 0.95) = sqrt(((0.8-0.76667)^2 + (0.55-0.76667)^2
#   + (0.95-0.76667)^2) / 3) = 0.1649915822768611
# sum |mean_g - overall| = 0.0583333 + 0.1916667 + 0.2083333 = 0.4583333333
FAIRMEDFM = (4.45 / 6) / (1 + 0.1649915822768611)  # = 0.636628...
FAIRSEG = (4.45 / 6) / (1 + 0.4583333333333333)    # = 0.50857...


def test_both_es_dice_definitions_equal_the_worked_fixture():
    assert es_dice_fairmedfm(DICE, groups=GROUPS) == pytest.approx(FAIRMEDFM, abs=1e-6)
    assert es_dice_fairseg(DICE, groups=GROUPS) == pytest.approx(FAIRSEG, abs=1e-6)
    assert abs(FAIRMEDFM - 0.636628) < 1e-6 and abs(FAIRSEG - 0.508571) < 1e-6
    assert es_dice_fairmedfm([0.8, 0.8], groups=["x", "y"]) == pytest.approx(0.8)  # fair


def test_fairmedfm_package_is_the_oracle_of_its_own_definition():
    fairmedfm = pytest.importorskip("fairmedfm", reason="fairmedfm (dev oracle) not installed")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fairmedfm.equity_scaled_dice(np.array(DICE), sensitive_features=GROUPS)
    assert es_dice_fairmedfm(DICE, groups=GROUPS) == pytest.approx(theirs, abs=1e-6)
    rng = np.random.default_rng(0)
    d, g = rng.random(200), rng.choice(list("pqrs"), 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fairmedfm.equity_scaled_dice(d, sensitive_features=g)
    assert es_dice_fairmedfm(d, groups=g) == pytest.approx(theirs, abs=1e-6)
    # FairSeg's definition is not in fairmedfm: the two differ on unequal groups
    assert es_dice_fairseg(d, groups=g) != pytest.approx(theirs, abs=1e-6)
