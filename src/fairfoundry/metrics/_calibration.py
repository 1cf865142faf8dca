r"""Calibration metrics: ECE, Brier score, log loss, calibration slope and intercept."""

from __future__ import annotations

from .._errors import FairfoundryError
from ._ranking import single_segment_stats

__all__ = ["ece", "brier_score", "log_loss", "calibration_slope_intercept", "ECE_STRATEGIES"]

ECE_STRATEGIES = ("uniform", "quantile")


def _check_ece(n_bins: int, strategy: str) -> None:
    if strategy not in ECE_STRATEGIES:
        raise FairfoundryError(f"unknown ECE strategy {strategy!r}",
                               hint=f"use one of {', '.join(ECE_STRATEGIES)}")
    if int(n_bins) < 1:
        raise FairfoundryError(f"ECE needs at least one bin, got n_bins={n_bins}")


def ece(y_true, y_prob, *, n_bins: int = 10, strategy: str = "uniform",
        sample_weight=None) -> float:
    r"""Expected calibration error.

    .. math:: \mathrm{ECE} = \sum_{k=1}^{K} \frac{n_k}{n}\,\bigl|\bar y_k - \bar p_k\bigr|
              = \frac{1}{n}\sum_k \Bigl|\sum_{i \in B_k} (y_i - p_i)\Bigr|

    Bins ``B_k`` are exactly those of scikit-learn's ``calibration_curve``: ``"uniform"``
    splits [0, 1] into ``n_bins`` equal widths, ``"quantile"`` uses the sample percentiles
    (equal mass); a score on an edge belongs to the lower bin. Empty bins contribute nothing.
    Source: Naeini, Cooper & Hauskrecht, AAAI 2015; Guo et al., ICML 2017.

    Examples
    --------
    >>> round(ece([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9], n_bins=2), 6)
    0.225
    """
    _check_ece(n_bins, strategy)
    return single_segment_stats(y_true, y_prob, sample_weight=sample_weight, need={"ece"},
                                ece_bins=n_bins, ece_strategy=strategy)["ece"]


def brier_score(y_true, y_prob, *, sample_weight=None) -> float:
    r"""Brier score, :math:`\frac{1}{n}\sum_i (p_i - y_i)^2`.

    Source: Brier, Monthly Weather Review 1950; scikit-learn ``brier_score_loss``.

    Examples
    --------
    >>> round(brier_score([0, 1], [0.2, 0.6]), 6)
    0.1
    """
    return single_segment_stats(y_true, y_prob, sample_weight=sample_weight,
                                need={"brier"})["brier"]


def log_loss(y_true, y_prob, *, sample_weight=None) -> float:
    r"""Binary cross-entropy, :math:`-\frac{1}{n}\sum_i y_i\log p_i + (1-y_i)\log(1-p_i)`,
    with :math:`p` clipped to :math:`[\epsilon, 1-\epsilon]`, :math:`\epsilon` = float64
    machine epsilon, as scikit-learn's ``log_loss``.

    Examples
    --------
    >>> round(log_loss([0, 1], [0.5, 0.5]), 6)
    0.693147
    """
    return single_segment_stats(y_true, y_prob, sample_weight=sample_weight,
                                need={"log_loss"})["log_loss"]


def calibration_slope_intercept(y_true, y_prob, *, sample_weight=None) -> tuple[float, float]:
    r"""Calibration slope and intercept by logistic recalibration.

    Fits :math:`\operatorname{logit} P(y=1) = a + b\,\operatorname{logit}(p)` by maximum
    likelihood (Newton's method); returns ``(b, a)``: slope 1 and intercept 0 mean perfect
    calibration, slope < 1 means over-confident scores. Scores are clipped to
    :math:`[\epsilon, 1-\epsilon]` before the logit. NaN when a class is absent or the fit
    does not converge (perfect separation).
    Source: Cox, Biometrika 1958; Van Calster et al., BMC Medicine 2019.

    Examples
    --------
    >>> b, a = calibration_slope_intercept([0, 0, 1, 0, 1, 1], [0.2, 0.4, 0.3, 0.6, 0.7, 0.9])
    >>> round(b, 3), round(a, 3)
    (1.07, -0.088)
    """
    st = single_segment_stats(y_true, y_prob, sample_weight=sample_weight,
                              need={"cal_slope", "cal_intercept"})
    return st["cal_slope"], st["cal_intercept"]
