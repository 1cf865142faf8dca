"""The monitoring configuration (YAML): windows, reference, thresholds, alert rules."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._errors import FairfoundryError

__all__ = ["MonitorConfig", "AlertRule", "WindowSpec", "load_config", "RULE_METRICS"]

#: metrics an alert rule may watch: name -> what it is
RULE_METRICS = {
    "auc": "realised AUC (labels in), CI from the evaluation engine's bootstrap",
    "tpr": "realised true positive rate at the label's threshold",
    "fpr": "realised false positive rate",
    "ppv": "realised positive predictive value",
    "prevalence": "realised prevalence of the label",
    "ece": "realised expected calibration error",
    "est_auc": "label-free AUC estimate (CBPE)",
    "est_tpr": "label-free TPR estimate (CBPE)",
    "est_fpr": "label-free FPR estimate (CBPE)",
    "est_ppv": "label-free PPV estimate (CBPE)",
    "est_prevalence": "label-free prevalence estimate (mean calibrated probability)",
    "score_psi": "PSI of the group's scores vs the reference window",
    "score_ks_p": "KS test p-value of the group's scores vs the reference",
    "score_wasserstein": "Wasserstein distance / reference SD of the group's scores",
    "score_drift": "1 when the size-dependent default test flags score drift, else 0",
    "share": "the group's share of the window's predictions",
    "embedding_auc": "domain classifier AUC, reference vs window embeddings (label '*'; only "
                     "when embeddings are given to evaluate_windows)",
    "embedding_drift": "1 when the 95 % CI of the embedding domain classifier AUC is above "
                       "0.55, else 0",
    "mix_js": "Jensen-Shannon distance of the attribute's mix vs the reference (group '*')",
    "mix_chi2_p": "chi-squared p-value of the attribute's mix vs the reference (group '*')",
    "mix_drift": "1 when the default test flags a change of the attribute's mix (group '*')",
    "n": "predictions in the window",
    "n_labelled": "predictions with a label in the window",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowSpec(_Strict):
    """``by: count`` (every ``size`` predictions, in time order) or ``by: time`` (``size``
    seconds from the first prediction)."""

    by: Literal["count", "time"] = "count"
    size: float = Field(5000, gt=0)


class AlertRule(_Strict):
    """One alert rule: raise when ``metric`` of a group is past ``threshold`` (``op``) in
    ``consecutive`` complete windows in a row, each with at least ``min_n`` rows behind it.

    ``bound: ci`` asks the whole interval to be past the threshold (fewer false alerts);
    ``label``/``attribute`` None and ``group: "*"`` watch every label / attribute / group.
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    metric: str
    op: Literal["<", ">"]
    threshold: float
    label: str | None = None
    attribute: str | None = None
    group: str = "*"
    min_n: int = Field(100, ge=1)
    consecutive: int = Field(1, ge=1, le=100)
    bound: Literal["estimate", "ci"] = "estimate"

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in RULE_METRICS:
            raise ValueError(f"unknown metric {v!r}; metrics are: {', '.join(RULE_METRICS)}")
        return v


class MonitorConfig(_Strict):
    """Everything a window evaluation needs (defaults in brackets).

    Attributes
    ----------
    windows : WindowSpec [count, 5000]
    reference_windows : int [1]
        The first windows form the reference: CBPE calibration and drift baselines.
    thresholds : dict label -> float [0.5]
        Decision threshold of each label (chosen on validation data, never on the stream).
    bins : dict attribute -> edges
        Left-closed bins for numeric attributes (``age: [40, 60, 80]``).
    intersect : list of lists of attributes
        Intersections evaluated as extra attributes, named ``"sex&view"`` (groups
        ``"sex=female & view=AP"``), e.g. ``[[sex, view]]``.
    max_groups : int [20]
        Groups kept per attribute (largest first); the rest are pooled as ``other``, so that
        outputs and Prometheus label sets stay bounded.
    intervals : {analytic, bootstrap, none} [analytic]
        How the intervals of realised metrics and CBPE estimates are computed. ``analytic``:
        closed forms (Wilson on the patient-clustered effective sample size for proportions,
        clustered DeLong for the AUC, the delta method for CBPE; no interval for ECE), one sort
        per window and group, the default because it keeps a million events within seconds;
        ``bootstrap``: the evaluation engine's bootstrap (``bootstrap`` replicates) and CBPE
        label simulations (``simulations``); ``none``: point estimates only.
    bootstrap : int [200]
        With ``intervals: bootstrap``: bootstrap replicates for the CIs of realised metrics
        (clustered by patient when every prediction has a patient id).
    calibration : {isotonic, platt} [isotonic]
    calibrate_by_group : bool [True]
        Fit CBPE's calibration per group when the group's reference has 100 labelled rows and
        10 of each class; otherwise (and when False) the overall calibration is used.
    simulations : int [200]
        With ``intervals: bootstrap``: label simulations for the intervals of CBPE estimates.
    drift_method : {auto, ks, wasserstein, psi} [auto]
    seed : int [0]
    alerts : list of AlertRule
    """

    windows: WindowSpec = WindowSpec()
    reference_windows: int = Field(1, ge=1)
    thresholds: dict[str, float] = {}
    bins: dict[str, list[float]] = {}
    intersect: list[list[str]] = []
    max_groups: int = Field(20, ge=2, le=200)
    intervals: Literal["analytic", "bootstrap", "none"] = "analytic"
    bootstrap: int = Field(200, ge=0)
    calibration: Literal["isotonic", "platt"] = "isotonic"
    calibrate_by_group: bool = True
    simulations: int = Field(200, ge=0)
    drift_method: Literal["auto", "ks", "wasserstein", "psi"] = "auto"
    seed: int = 0
    alerts: list[AlertRule] = []

    @field_validator("thresholds")
    @classmethod
    def _thr(cls, v: dict) -> dict:
        for k, t in v.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold of {k!r} must be in [0, 1], got {t}")
        return v

    @field_validator("intersect")
    @classmethod
    def _inter(cls, v: list) -> list:
        for cols in v:
            if len(cols) < 2 or len(set(cols)) != len(cols):
                raise ValueError(f"an intersection needs two or more distinct attributes, got "
                                 f"{cols}")
        return v

    @field_validator("alerts")
    @classmethod
    def _unique(cls, v: list) -> list:
        names = [r.name for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"alert rule names repeat: {names}")
        return v

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "monitor config") -> MonitorConfig:
        """Validate a mapping; a bad key or value raises :class:`FairfoundryError` naming it."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            hint = None
            if err["type"] == "extra_forbidden":
                hint = "valid keys are: " + ", ".join(cls.model_fields)
            raise FairfoundryError(f"{source}: {loc}: {err['msg']}", hint=hint) from exc


def load_config(path) -> MonitorConfig:
    """Read and validate a monitoring config YAML file (see :class:`MonitorConfig`)."""
    from .._io import read_yaml_mapping

    return MonitorConfig.from_dict(read_yaml_mapping(path, what="monitor config"),
                                   source=str(Path(path)))
