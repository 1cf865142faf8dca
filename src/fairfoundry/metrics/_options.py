"""The validated options of the group evaluation engine (validated once, where they enter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from .._errors import FairfoundryError, did_you_mean

__all__ = ["EngineOptions", "CI_METHODS", "DEGENERATE_CIS", "GAP_CIS", "CALIBRATION_BOOTSTRAPS", "ECE_STRATEGIES"]

CI_METHODS = ("percentile", "bca")
GAP_CIS = ("pairwise", "percentile")
#: interval of a proportion whose bootstrap interval collapses to a point (0 % or 100 %)
DEGENERATE_CIS = ("wilson", "clopper_pearson", "none")
CALIBRATION_BOOTSTRAPS = ("auto", "newton", "one_step")
ECE_STRATEGIES = ("uniform", "quantile")


@dataclass(frozen=True)
class EngineOptions:
    """Options of :func:`fairfoundry.metrics.evaluate_groups`, validated when built.

    An instance is always valid (construction raises :class:`FairfoundryError` naming the
    parameter), and frozen, so it is validated once where the user's input enters (the API
    call, the CLI, a config) and passed to the engines as is. ``aliases`` maps field names to
    the caller's parameter names for the messages (``{"n_bootstrap": "bootstrap"}`` from
    :func:`fairfoundry.evaluate`); the error's ``param`` is that name, which the CLI maps to
    its flag.

    Examples
    --------
    >>> EngineOptions(n_bootstrap=200, ci_method="bca").ci_method
    'bca'
    >>> EngineOptions(confidence=1.5)
    Traceback (most recent call last):
    ...
    fairfoundry._errors.FairfoundryError: confidence=1.5: must be in (0, 1)
    """

    metrics: tuple[str, ...] | None = None
    ece_bins: int = 10
    ece_strategy: str = "uniform"
    n_bootstrap: int = 0
    ci_method: str = "percentile"
    confidence: float = 0.95
    n_permutations: int = 0
    seed: int = 0
    n_jobs: int = 1
    bca_blocks: int = 100
    calibration_bootstrap: str = "auto"
    gap_ci: str = "pairwise"
    chunk_elements: int = 2**23
    degenerate_ci: str = "wilson"
    aliases: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        from ._engine import METRICS

        def fail(field: str, why: str, hint: str | None = None):
            name = (self.aliases or {}).get(field, field)
            raise FairfoundryError(f"{name}={getattr(self, field)!r}: {why}", hint=hint,
                                   param=name)

        def choice(field: str, allowed: Sequence[str]):
            value = getattr(self, field)
            if value not in allowed:
                fail(field, "unknown value", did_you_mean(str(value), allowed, what="choices"))

        for f in ("ece_bins", "n_bootstrap", "n_permutations", "seed", "n_jobs", "bca_blocks",
                  "chunk_elements"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int):
                try:
                    iv = int(v)
                except (TypeError, ValueError):
                    fail(f, "must be an integer")
                if iv != v:
                    fail(f, "must be an integer")
                object.__setattr__(self, f, iv)
        for f in ("n_bootstrap", "n_permutations"):
            if getattr(self, f) < 0:
                fail(f, "must be >= 0")
        for f in ("ece_bins", "bca_blocks", "chunk_elements"):
            if getattr(self, f) < 1:
                fail(f, "must be >= 1")
        object.__setattr__(self, "n_jobs", max(1, self.n_jobs))
        try:
            conf = float(self.confidence)
        except (TypeError, ValueError):
            fail("confidence", "must be a number in (0, 1)")
        if not 0.0 < conf < 1.0:
            fail("confidence", "must be in (0, 1)")
        object.__setattr__(self, "confidence", conf)
        choice("ci_method", CI_METHODS)
        choice("gap_ci", GAP_CIS)
        choice("calibration_bootstrap", CALIBRATION_BOOTSTRAPS)
        choice("ece_strategy", ECE_STRATEGIES)
        choice("degenerate_ci", DEGENERATE_CIS)
        if self.metrics is not None:
            wanted = [self.metrics] if isinstance(self.metrics, str) else list(self.metrics)
            for m in wanted:
                if m not in METRICS:
                    raise FairfoundryError(f"metrics: unknown metric {m!r}", param="metrics",
                                           hint=did_you_mean(m, METRICS, what="metrics"))
            object.__setattr__(self, "metrics", tuple(m for m in METRICS if m in set(wanted)))

    @classmethod
    def names(cls) -> list[str]:
        """The option names (keyword arguments of :func:`evaluate_groups`)."""
        return [f.name for f in fields(cls) if f.name != "aliases"]

    def as_dict(self) -> dict:
        """The options as plain values (for configs and sidecars)."""
        d = asdict(self)
        d.pop("aliases")
        return d

    @property
    def metric_list(self) -> list[str]:
        from ._engine import METRICS

        return list(self.metrics) if self.metrics is not None else list(METRICS)
