"""Per-sample values (hallucination flags, Dice, ...) by protected attribute, and their files.

:func:`evaluate_by_attributes` turns a per-sample table into the tidy tables of
``fairfoundry evaluate`` (``evaluation.csv`` rows: ``label, attribute, group, metric, estimate,
ci_low, ci_high, n, reason``; ``summary.json`` summaries with CIs and permutation p-values),
one call of :func:`fairfoundry.metrics.evaluate_group_means` per attribute. Groups come from
:func:`fairfoundry.metrics.intersect_groups` (and :func:`fairfoundry.data.bin_values` for
``--bins``): this module is their only call site for reports and segmentation, so a shared
group model can replace them in one place. Used by ``evaluate-reports`` and ``evaluate-seg``.

Layer 1: numpy / pandas / jinja2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean

__all__ = ["GroupedEvaluation", "attribute_groups", "evaluate_by_attributes", "OUTPUT_FILES",
           "Attribute"]

#: files written by :meth:`GroupedEvaluation.save`
OUTPUT_FILES = ("evaluation.csv", "summary.json", "per_sample.csv", "report.html")
BY_GROUP_COLUMNS = ("label", "attribute", "group", "metric", "estimate", "ci_low", "ci_high",
                    "n", "reason")
SUMMARY_COLUMNS = ("label", "attribute", "metric", "estimate", "ci_low", "ci_high", "p_value",
                   "reason", "detail")


@dataclass(frozen=True)
class Attribute:
    """One protected attribute (or intersection): a name, integer codes and group names."""

    name: str
    codes: np.ndarray
    names: tuple[str, ...]


def attribute_groups(frame: pd.DataFrame, sensitive: Sequence[str], *,
                     intersect: Sequence[Sequence[str]] = (),
                     bins: Mapping[str, Sequence[float]] | None = None,
                     source: str = "input") -> list[Attribute]:
    """The groups of each ``sensitive`` column and each intersection in ``intersect``.

    Missing values are the group ``unknown``; ``bins`` (``{"age": [40, 60, 80]}``) bins a
    numeric column into left-closed intervals (groups in numeric order).
    """
    from ..groups import intersect_groups, intersection_attribute

    bins = dict(bins or {})
    cols = list(dict.fromkeys([*sensitive, *[c for g in intersect for c in g]]))
    if not sensitive:
        raise FairfoundryError("no --sensitive attribute given",
                               hint="for example --sensitive sex --sensitive age")
    prepared: dict[str, pd.Series] = {}
    for c in cols:
        if c not in frame.columns:
            raise FairfoundryError(f"sensitive column {c!r} not found in {source}",
                                   hint=did_you_mean(c, frame.columns, what="columns"))
        raw = frame[c]
        if c in bins:
            num = pd.to_numeric(raw, errors="coerce")
            bad = np.flatnonzero(num.isna().to_numpy() & raw.notna().to_numpy())
            if bad.size:
                raise FairfoundryError(f"--bins {c}: column {c!r} is not numeric: row "
                                       f"{bad[0] + 1} holds {raw.iloc[bad[0]]!r}")
            prepared[c] = num
        else:
            if pd.api.types.is_float_dtype(raw) and raw.dropna().apply(float.is_integer).all():
                raw = raw.astype("Int64")
            prepared[c] = raw.astype(object).where(raw.notna(), None)
    table = pd.DataFrame(prepared)
    out = []
    for group in [[c] for c in sensitive] + [list(g) for g in intersect]:
        codes, names = intersect_groups(table, group, bins={c: bins[c] for c in group if c in bins})
        out.append(Attribute(intersection_attribute(group), np.asarray(codes, dtype=np.int64), tuple(names)))
    return out


def _events(values: pd.Series, codes: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Rows with a value > 0 per group (events of a 0/1 flag or of a count)."""
    v = values.to_numpy(dtype=float)
    return {nm: float(np.sum((codes == k) & (v > 0))) for k, nm in enumerate(names)}


def evaluate_by_attributes(values: pd.DataFrame, attributes: Sequence[Attribute], *,
                           label: str, directions: Mapping[str, object] | None = None,
                           scores: Mapping | None = None,
                           score_extremes: Mapping[str, str] | None = None,
                           binary_metrics: Sequence[str] = (),
                           headline_metrics: Sequence[str] = (),
                           cluster: np.ndarray | None = None,
                           reference: Mapping[str, str] | None = None, n_bootstrap: int = 0,
                           n_permutations: int = 0, confidence: float = 0.95, seed: int = 0,
                           min_events: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-group means of every column of ``values`` for every attribute, with CIs and tests.

    Returns ``(by_group, summary, evidence)``: the tidy tables (columns ``BY_GROUP_COLUMNS``
    and ``SUMMARY_COLUMNS``) and ``{"headlines": [...], "too_few_to_judge": [...]}``: a gap of a
    ``headline_metrics`` metric is stated only when its CI excludes 0 and, for a binary
    (0/1) metric, each of the two groups involved has at least ``min_events`` events and
    non-events; otherwise it is listed as too few to judge.
    """
    from ..metrics import evaluate_group_means

    reference = dict(reference or {})
    unknown = set(reference) - {a.name for a in attributes}
    if unknown:
        a = sorted(unknown)[0]
        raise FairfoundryError(f"--reference-group {a}=...: {a!r} is not an evaluated attribute",
                               hint=did_you_mean(a, [x.name for x in attributes],
                                                 what="attributes"))
    metric_names = list(values.columns)
    V = values.to_numpy(dtype=np.float64)
    by, summ = [], []
    headlines, too_few = [], []
    for attr in attributes:
        ref = reference.get(attr.name)
        if ref is not None and ref not in attr.names:
            raise FairfoundryError(f"--reference-group {attr.name}={ref}: no such group",
                                   hint=did_you_mean(ref, attr.names, what="groups"))
        res = evaluate_group_means(
            V, groups=attr.codes, group_names=list(attr.names), metric_names=metric_names,
            directions=directions, scores=scores, score_extremes=score_extremes,
            cluster=cluster, reference=ref, n_bootstrap=n_bootstrap,
            n_permutations=n_permutations, confidence=confidence, seed=seed)
        pg = res.per_group.assign(label=label, attribute=attr.name)
        sm = res.summary.assign(label=label, attribute=attr.name)
        by.append(pg[list(BY_GROUP_COLUMNS)])
        summ.append(sm[list(SUMMARY_COLUMNS)])
        for m in headline_metrics:
            row = sm.loc[sm["metric"] == f"{m}_gap"]
            if row.empty or not np.isfinite(row["ci_low"].iloc[0]):
                continue
            lo, hi, est = (float(row[c].iloc[0]) for c in ("ci_low", "ci_high", "estimate"))
            detail = str(row["detail"].iloc[0])
            if lo <= 0:
                continue
            pair = [s.strip() for s in detail.split(" - ")]
            text = (f"{m} differs by {attr.name}: {detail} = {est:.3f} "
                    f"({confidence:.0%} CI {lo:.3f} to {hi:.3f}"
                    + (f", permutation p = {row['p_value'].iloc[0]:.3g})"
                       if np.isfinite(row["p_value"].iloc[0]) else ")"))
            sub = pg.loc[pg["metric"] == m].set_index("group")["n"]
            ev = _events(values[m], attr.codes, attr.names)
            enough = True
            for gname in pair:
                n_def = float(sub.get(gname, 0))
                e = ev.get(gname, 0.0)
                if m in binary_metrics and min(e, n_def - e) < min_events:
                    enough = False
                if n_def < min_events:
                    enough = False
            (headlines if enough else too_few).append(
                text if enough else text + f": too few to judge (fewer than {min_events} "
                                           "rows, events or non-events in a group)")
    by_group = pd.concat(by, ignore_index=True)
    summary = pd.concat(summ, ignore_index=True)
    return by_group, summary, {"headlines": headlines, "too_few_to_judge": too_few,
                               "min_events": int(min_events)}


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells of text columns that a spreadsheet would run as a formula get a leading quote."""
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].astype(object).map(lambda v: "'" + v if isinstance(v, str) and v[:1] and v[:1] in "=+-@"
                                else v)
    return out


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    return f"{float(x):.3f}"


@dataclass
class GroupedEvaluation:
    """Result of :func:`evaluate_reports` / :func:`fairfoundry.segmentation.evaluate_segmentation`.

    Attributes
    ----------
    by_group : DataFrame
        ``label, attribute, group, metric, estimate, ci_low, ci_high, n, reason``.
    summary_table : DataFrame
        ``label, attribute, metric, estimate, ci_low, ci_high, p_value, reason, detail``.
    per_sample : DataFrame
        The per-sample values (with the sample id and attributes), written to
        ``per_sample.csv``.
    config : dict
        Every option of the run, including the seed.
    evidence : dict
        ``headlines`` (gaps whose CI excludes 0 with enough events) and ``too_few_to_judge``.
    info : dict
        Input file, fingerprint, row count.
    """

    kind: str
    title: str
    by_group: pd.DataFrame
    summary_table: pd.DataFrame
    per_sample: pd.DataFrame
    config: dict
    evidence: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def get(self, metric: str, *, attribute: str | None = None) -> pd.DataFrame:
        """Rows of :attr:`by_group` for ``metric`` (optionally one attribute)."""
        t = self.by_group[self.by_group["metric"] == metric]
        if attribute is not None:
            t = t[t["attribute"] == attribute]
        return t.reset_index(drop=True)

    @property
    def summary(self) -> dict:
        """Everything of ``summary.json``."""
        from .._io import to_jsonable, versions

        return to_jsonable({
            "schema_version": 1, "kind": self.kind, "created": self.created,
            "input": self.info, "summaries": self.summary_table.to_dict(orient="records"),
            "headlines": self.evidence.get("headlines", []),
            "too_few_to_judge": self.evidence.get("too_few_to_judge", []),
            "notes": list(self.notes), "config": self.config, "seed": self.config.get("seed"),
            "versions": versions(),
        })

    def to_html(self) -> str:
        """The self-contained HTML report (jinja2 template, autoescaped)."""
        from importlib import resources

        import jinja2

        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        text = resources.files(__package__).joinpath("grouped_report.html.j2").read_text(
            encoding="utf-8")
        tables = []
        for attr, t in self.by_group.groupby("attribute", sort=False):
            rows = [{"metric": r.metric, "group": r.group, "estimate": _fmt(r.estimate),
                     "ci": f"{_fmt(r.ci_low)} – {_fmt(r.ci_high)}", "n": _fmt(int(r.n)),
                     "reason": r.reason} for r in t.itertuples()]
            tables.append({"attribute": attr, "rows": rows})
        summ = [{"attribute": r.attribute, "metric": r.metric, "estimate": _fmt(r.estimate),
                 "ci": f"{_fmt(r.ci_low)} – {_fmt(r.ci_high)}", "p": _fmt(r.p_value),
                 "detail": r.detail, "reason": r.reason}
                for r in self.summary_table.itertuples()]
        return env.from_string(text).render(
            title=self.title, created=self.created, info=self.info, tables=tables,
            summary=summ, headlines=self.evidence.get("headlines", []),
            too_few=self.evidence.get("too_few_to_judge", []), notes=self.notes,
            config=self.config)

    def save(self, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write :data:`OUTPUT_FILES` into ``out``: all of them or none."""
        from .._io import (
            prepare_out_dir,
            staged_dir,
            write_json_atomic,
            write_table_atomic,
            write_text_atomic,
        )

        out = prepare_out_dir(out, overwrite=overwrite, outputs=list(OUTPUT_FILES))
        with staged_dir(out) as stage:
            write_table_atomic(stage / "evaluation.csv", _csv_safe(self.by_group))
            write_table_atomic(stage / "per_sample.csv", _csv_safe(self.per_sample))
            write_text_atomic(stage / "report.html", self.to_html())
            write_json_atomic(stage / "summary.json", self.summary)
        return out


def run_grouped(*, kind: str, title: str, values: pd.DataFrame, frame: pd.DataFrame,
                id_col: str | None, sensitive: Sequence[str], intersect, bins, cluster: str | None,
                reference_group, n_bootstrap: int, n_permutations: int, confidence: float,
                seed: int, label: str, config: dict, info: dict, notes: list[str],
                directions=None, scores=None, score_extremes=None, binary_metrics=(),
                headline_metrics=(), min_events: int = 10,
                extra_columns: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                ) -> GroupedEvaluation:
    """Shared tail of the report and segmentation evaluations: groups, tables, result."""
    attrs = attribute_groups(frame, sensitive, intersect=intersect, bins=bins,
                             source=info.get("source", "input"))
    cl = None
    if cluster is not None:
        if cluster not in frame.columns:
            raise FairfoundryError(f"--cluster column {cluster!r} not found",
                                   hint=did_you_mean(cluster, frame.columns, what="columns"))
        miss = np.flatnonzero(frame[cluster].isna().to_numpy())
        if miss.size:
            raise FairfoundryError(f"--cluster column {cluster!r} is empty at row {miss[0] + 1}",
                                   hint="give every row its patient id")
        cl = frame[cluster].astype(str).to_numpy()
    by_group, summary, evidence = evaluate_by_attributes(
        values, attrs, label=label, directions=directions, scores=scores,
        score_extremes=score_extremes, binary_metrics=binary_metrics,
        headline_metrics=headline_metrics, cluster=cl, reference=reference_group,
        n_bootstrap=n_bootstrap, n_permutations=n_permutations, confidence=confidence,
        seed=seed, min_events=min_events)
    keep = [c for c in dict.fromkeys([*([id_col] if id_col else []), *sensitive,
                                      *[c for g in intersect for c in g],
                                      *([cluster] if cluster else [])])]
    per_sample = pd.concat([frame[keep].reset_index(drop=True),
                            values.reset_index(drop=True)], axis=1)
    if extra_columns is not None:
        per_sample = extra_columns(per_sample)
    config = {**config, "sensitive": list(sensitive), "intersect": [list(g) for g in intersect],
              "bins": {k: list(v) for k, v in (bins or {}).items()}, "cluster": cluster,
              "reference_group": dict(reference_group or {}), "bootstrap": int(n_bootstrap),
              "permutations": int(n_permutations), "confidence": float(confidence),
              "seed": int(seed), "min_events": int(min_events), "ci_method": "percentile",
              "gap_ci": "pairwise"}
    return GroupedEvaluation(kind=kind, title=title, by_group=by_group, summary_table=summary,
                             per_sample=per_sample, config=config, evidence=evidence,
                             info=info, notes=notes)
