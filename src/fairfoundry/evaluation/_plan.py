"""The validated evaluation plan and its run: one engine call per label and attribute."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._macro import (
    MACRO_LABEL,
    aligned_replicates,
    first_replicate_rows,
    macro_by_group,
    macro_summary,
)
from ._result import BY_GROUP_COLUMNS, SUMMARY_COLUMNS, Evaluation

if TYPE_CHECKING:
    from ..metrics import EngineOptions

log = logging.getLogger(__name__)

__all__ = ["EvaluationPlan", "UNDERDIAGNOSIS_LABEL"]

#: ``label`` value of the rows for the multi-label underdiagnosis rate.
UNDERDIAGNOSIS_LABEL = "any_finding"


@dataclass
class _Attribute:
    name: str
    columns: list[str]
    codes: np.ndarray          # codes over the report rows, 0..G-1
    names: list[str]
    binned: bool = False


@dataclass
class EvaluationPlan:
    """A validated evaluation, ready to run: inputs resolved, thresholds chosen.

    Built by :func:`prepare_evaluation`; :meth:`run` does the (possibly long) bootstrap.
    :attr:`total_replicates` is the number of units reported to ``progress``.
    """

    source: str
    fingerprint: str
    n_rows: int
    labels: list[str]
    score_cols: list[str]
    y: dict[str, np.ndarray]              # report rows
    s: dict[str, np.ndarray]              # report rows
    attributes: list[_Attribute]
    cluster: np.ndarray | None
    thresholds: list[dict]
    threshold_on_report_split: bool
    report_split: str | None
    reference: dict[str, str]
    options: dict
    config: dict
    no_finding: np.ndarray | None = None  # dedicated "no finding" score, report rows
    no_finding_threshold: float | None = None
    warnings: list[str] = field(default_factory=list)
    #: the engine's options, validated once by :func:`prepare_evaluation`
    engine: EngineOptions | None = None
    generated_split: dict | None = None   # --val-fraction / --split-by record

    @property
    def multilabel(self) -> bool:
        return len(self.labels) > 1 or self.no_finding is not None

    def _suppressing(self, attr: _Attribute) -> bool:
        k = self.options["min_group_size"]
        return k > 0 and bool((np.bincount(attr.codes, minlength=len(attr.names)) < k).any())

    def _calls_per_label(self) -> int:
        return sum(2 if self._suppressing(a) else 1 for a in self.attributes)

    @property
    def total_replicates(self) -> int:
        """Bootstrap + permutation replicates over all engine calls (for a progress bar)."""
        per_call = self.options["bootstrap"] + self.options["permutations"]
        calls = len(self.labels) * self._calls_per_label()
        if self.multilabel:
            calls += self._calls_per_label()
        return per_call * calls

    # -- running -------------------------------------------------------------------------------

    def _engine_kwargs(self, progress) -> dict:
        if self.engine is not None:
            return dict(options=self.engine, progress=progress)
        o = self.options
        return dict(ece_bins=o["ece_bins"], ece_strategy=o["ece_strategy"],
                    n_bootstrap=o["bootstrap"], ci_method=o["ci_method"],
                    confidence=o["confidence"], n_permutations=o["permutations"], seed=o["seed"],
                    n_jobs=o["n_jobs"], gap_ci=o["gap_ci"], progress=progress,
                    degenerate_ci=o.get("degenerate_ci", "wilson"))

    def _subset(self, attr: _Attribute, keep_groups: np.ndarray):
        """Rows of ``attr``'s groups in ``keep_groups`` (bool per group), re-coded 0..G'-1."""
        rows = keep_groups[attr.codes]
        remap = np.cumsum(keep_groups) - 1
        names = [n for n, k in zip(attr.names, keep_groups, strict=True) if k]
        return rows, remap[attr.codes[rows]].astype(np.int64), names

    def _run_attribute(self, call: Callable, attr: _Attribute):
        """Per-group rows and summary rows of one attribute, with small-cell suppression."""
        k = self.options["min_group_size"]
        ref = self.reference.get(attr.name)
        res = call(np.ones(attr.codes.size, dtype=bool), attr.codes, attr.names, ref)
        self._engine_configs.append(res.config)
        if res.config.get("permutation_scheme") == "cluster_sequences":
            self._varying.setdefault(attr.name, res.config.get("unexchangeable_clusters"))
        per_group = res.per_group.copy()
        summary = res.summary.copy()
        reps = {"per": res.replicates, "names": [*attr.names, "overall"],
                "summary": res.replicates, "rows0": first_replicate_rows(res)}
        if not self._suppressing(attr):
            return per_group, summary, [], reps
        sizes = np.bincount(attr.codes, minlength=len(attr.names))
        small = sizes < k
        small_names = [n for n, s in zip(attr.names, small, strict=True) if s]
        if int(attr.codes.size) < k:
            small_names.append("overall")
        mask = per_group["group"].astype(str).isin(small_names)
        per_group.loc[mask, ["estimate", "ci_low", "ci_high", "n"]] = np.nan
        per_group.loc[mask, "reason"] = f"suppressed: n < {k}"
        keep = ~small
        if keep.sum() >= 2 and (ref is None or ref not in small_names):
            rows, codes, names = self._subset(attr, keep)
            res_b = call(rows, codes, names, ref)
            summary = res_b.summary.copy()
            reps["summary"] = res_b.replicates
            note = (f"groups with n < {k} ({', '.join(small_names)}) left out of the summaries")
        else:
            summary = summary.iloc[0:0].copy()
            reps["summary"] = {}
            note = (f"summaries of {attr.name!r} not reported: fewer than two groups (or the "
                    f"reference group) have n >= {k}")
        suppressed = [{"attribute": attr.name, "group": g, "reason": f"n < {k}"} for g in small_names]
        return per_group, summary, [note, suppressed], reps

    def run(self, progress: Callable[[int], None] | None = None) -> Evaluation:
        """Run the engine for every label and attribute; return the :class:`Evaluation`."""
        from ..metrics import evaluate_groups

        by_group: list[pd.DataFrame] = []
        summaries: list[pd.DataFrame] = []
        suppressed: list[dict] = []
        replicates: dict[str, dict[str, dict]] = {}
        warnings = list(self.warnings)
        kw = self._engine_kwargs(progress)
        self._engine_configs = []
        self._varying: dict[str, int | None] = {}

        for label, thr in zip(self.labels, self.thresholds[: len(self.labels)], strict=True):
            y, s = self.y[label], self.s[label]
            overall_done = False
            for attr in self.attributes:
                def call(rows, codes, names, ref, y=y, s=s, thr=thr):
                    return evaluate_groups(
                        y[rows], s[rows], threshold=thr["threshold"], groups=codes,
                        group_names=names, reference=ref,
                        cluster=None if self.cluster is None else self.cluster[rows], **kw)

                per_group, summary, extra, reps = self._run_attribute(call, attr)
                replicates.setdefault(attr.name, {})[label] = reps
                per_group = per_group.assign(label=label, attribute=attr.name)
                is_overall = per_group["group"].astype(str) == "overall"
                if overall_done:
                    per_group = per_group[~is_overall]
                else:
                    per_group.loc[is_overall, "attribute"] = "overall"
                    overall_done = True
                by_group.append(per_group)
                summaries.append(summary.assign(label=label, attribute=attr.name))
                if extra:
                    note, supp = extra
                    if label == self.labels[0]:
                        warnings.append(note)
                        suppressed.extend(supp)
        if self.multilabel:
            by_u, sum_u, reps_u = self._underdiagnosis(progress)
            by_group.extend(by_u)
            summaries.extend(sum_u)
        else:
            reps_u = {}

        table = pd.concat(by_group, ignore_index=True)
        summary = pd.concat(summaries, ignore_index=True)
        if len(self.labels) > 1:
            conf = self.options["confidence"]
            reps = aligned_replicates(replicates, self.attributes[0].name)
            table = pd.concat([table, macro_by_group(table, self.labels, reps, conf)],
                              ignore_index=True)
            summary = pd.concat([summary, macro_summary(summary, self.labels, reps, conf)],
                                ignore_index=True)
        table = _tidy(table, BY_GROUP_COLUMNS)
        summary = _tidy(summary, SUMMARY_COLUMNS)
        warnings.extend(_undefined_warnings(table))
        warnings.extend(_shifted_ci_warnings(table, self.options["confidence"]))
        warnings.extend(_shifted_ci_warnings(summary, self.options["confidence"]))
        for name, fixed in self._varying.items():
            warnings.append(
                f"{name} varies within {self.config.get('cluster')} clusters: permutation "
                "p-values permute whole clusters' group sequences among clusters with the same "
                f"number of rows (image-level shuffling would be anti-conservative); {fixed} "
                "cluster(s) of a size no other cluster has keep their own sequence")
        findings, too_few, finfo = self._findings(table, replicates, reps_u)
        return Evaluation(
            by_group=table, summary_table=summary, thresholds=pd.DataFrame(self.thresholds),
            config=self.config, warnings=warnings, suppressed=suppressed,
            info={"source": self.source, "fingerprint": self.fingerprint, "n_rows": self.n_rows,
                  "n_report_rows": int(next(iter(self.y.values())).size),
                  "report_split": self.report_split,
                  "threshold_on_report_split": self.threshold_on_report_split,
                  "generated_split": self.generated_split,
                  "uncertainty": self._uncertainty()},
            curves=self._curve_frame(), findings=findings, too_few=too_few,
            findings_info=finfo,
        )

    def _findings(self, table, replicates, reps_u):
        """Headline findings (:func:`~fairfoundry.evaluation._findings.find_findings`)."""
        from ._findings import find_findings

        reps = None
        if self.options["bootstrap"] > 0:
            reps = {a: dict(per) for a, per in replicates.items()}
            for a, r in reps_u.items():
                reps.setdefault(a, {})[UNDERDIAGNOSIS_LABEL] = r
        from ._findings import proportion_cells

        cells = {}
        for label, thr in zip(self.labels, self.thresholds[: len(self.labels)], strict=True):
            for m, cell in proportion_cells(self.y[label],
                                            self.s[label] >= thr["threshold"]).items():
                cells[(label, m)] = cell
        if getattr(self, "_nf", None) is not None:
            nf_true, nf_pred = self._nf
            cells[(UNDERDIAGNOSIS_LABEL, "underdiagnosis_rate")] = (nf_true == 0, nf_pred)
        joint, decode = _joint_codes([a.codes for a in self.attributes])
        rows = {"attributes": [a.name for a in self.attributes],
                "names": [a.names for a in self.attributes],
                "codes": [a.codes for a in self.attributes], "joint": joint, "decode": decode,
                "cluster": self.cluster, "cells": cells}
        return find_findings(table, reps, min_events=self.options.get("min_events", 10),
                             confidence=self.options["confidence"],
                             clustered=self.cluster is not None, rows=rows,
                             n_permutations=self.options.get("headline_permutations", 500),
                             seed=self.options["seed"],
                             metrics=self.options.get("headline_metrics"),
                             labels=self.options.get("headline_labels"))

    def _underdiagnosis(self, progress):
        """Seyyed-Kalantari underdiagnosis: diseased patients predicted 'no finding', by group."""
        from ..metrics import underdiagnosis_by_group

        diseased = np.zeros_like(self.y[self.labels[0]], dtype=bool)
        for label in self.labels:
            diseased |= self.y[label].astype(bool)
        no_finding_true = (~diseased).astype(np.int8)
        if self.no_finding is not None:
            nf_score, nf_threshold = self.no_finding, float(self.no_finding_threshold)
        else:  # predicted "no finding" = every label's score below its threshold
            nf_pred = np.ones_like(diseased)
            for label, thr in zip(self.labels, self.thresholds[: len(self.labels)], strict=True):
                nf_pred &= self.s[label] < thr["threshold"]
            nf_score, nf_threshold = nf_pred.astype(np.float64), 0.5
        self._nf = (no_finding_true, nf_score >= nf_threshold)
        kw = self._engine_kwargs(progress)
        kw.pop("ece_bins", None)
        kw.pop("ece_strategy", None)
        by, sm = [], []
        reps_u: dict = {}
        first = True
        for attr in self.attributes:
            def call(rows, codes, names, ref):
                return underdiagnosis_by_group(
                    no_finding_true[rows], nf_score[rows], threshold=nf_threshold, groups=codes,
                    group_names=names, reference=ref,
                    cluster=None if self.cluster is None else self.cluster[rows], **kw)

            per_group, summary, _, reps_u[attr.name] = self._run_attribute(call, attr)
            per_group = per_group.assign(label=UNDERDIAGNOSIS_LABEL, attribute=attr.name)
            is_overall = per_group["group"].astype(str) == "overall"
            if first:
                per_group.loc[is_overall, "attribute"] = "overall"
                first = False
            else:
                per_group = per_group[~is_overall]
            by.append(per_group)
            sm.append(summary.assign(label=UNDERDIAGNOSIS_LABEL, attribute=attr.name))
        return by, sm, reps_u

    def _uncertainty(self) -> dict:
        """How the intervals and p-values of this run were computed (for summary.json)."""
        o = self.options
        cal = sorted({c["calibration_bootstrap"] for c in self._engine_configs
                      if c.get("calibration_bootstrap")}) if o["bootstrap"] else []
        strat = sorted({bool(c["cluster_stratified"]) for c in self._engine_configs
                        if c.get("cluster_stratified") is not None})
        return {
            "bootstrap_replicates": o["bootstrap"], "confidence": o["confidence"],
            "resampling": ("clustered by " + str(self.config.get("cluster"))
                           + (" (stratified by group)" if strat == [True] else
                              " (patients drawn from all data: group sizes vary)"
                              if strat == [False] else
                              " (stratified by group for attributes where every patient lies in "
                              "one group)" if strat else "")) if self.cluster is not None
            else "rows, stratified by group",
            "ci_method": o["ci_method"] if o["bootstrap"] else None,
            "gap_ci": o["gap_ci"] if o["bootstrap"] else None,
            "gap_ci_description": (
                "*_gap and gap-type differences (demographic parity, equalized odds, equal "
                "opportunity, predictive parity): simultaneous Bonferroni percentile intervals of "
                "all signed pairwise group differences, turned into an interval of max |d|; "
                "ratios, *_to_overall, *_vs_reference and per-group metrics: " + o["ci_method"]
                if o["gap_ci"] == "pairwise" else
                "every summary: " + o["ci_method"] + " interval of its own replicates"
            ) if o["bootstrap"] else None,
            "macro": ("label 'macro' (mean over labels, including macro gaps): percentile "
                      "interval of the replicate-wise mean over labels (labels share their "
                      "resamples); macro gaps therefore use the plain percentile interval, which "
                      "does not reach 0") if o["bootstrap"] and self.multilabel else None,
            "calibration_bootstrap": cal or None,
            "calibration_bootstrap_note": (
                "one_step: calibration slope/intercept replicates take one Newton step from the "
                "full-data fit (first-order equivalent; point estimates are exact fits)"
                if "one_step" in cal else None),
            "ece_note": ("binned ECE is biased upward and more so under resampling: its CI can "
                         "lie above the point estimate (see warnings)") if o["bootstrap"] else None,
            "degenerate_ci": ({
                "method": o.get("degenerate_ci", "wilson"),
                "description": "proportions (TPR, FPR, PPV, ...) whose bootstrap interval "
                               "collapses to a point (a rate of 0 or 1 that no resample can "
                               "change) get a " + {"wilson": "Wilson score",
                                                    "clopper_pearson": "Clopper-Pearson exact",
                                                    "none": "(no: kept as the bootstrap's)"}[
                    o.get("degenerate_ci", "wilson")] + " interval on their own denominator",
                "cells": sum(len(c.get("degenerate_ci_cells", [])) for c in self._engine_configs),
                "examples": [x for c in self._engine_configs
                             for x in c.get("degenerate_ci_cells", [])][:20],
            } if o["bootstrap"] else None),
            "permutations": o["permutations"],
            "p_values": "permutation of group labels (of whole patients when clustered), "
                        "(1 + #extreme) / (1 + P)" if o["permutations"] else None,
            "permutation_scheme": ({
                a: ("cluster_sequences: the attribute varies within clusters; whole clusters' "
                    "group sequences (rows in input order) are permuted among clusters with the "
                    "same number of rows")
                for a in self._varying} or (
                "clusters: whole clusters' groups permuted" if self.cluster is not None else
                "rows")) if o["permutations"] else None,
        }

    def _curve_frame(self) -> pd.DataFrame:
        """Report-split labels, scores and group names (for ROC / calibration plots)."""
        cols: dict[str, object] = {}
        for label in self.labels:
            cols[f"y::{label}"] = self.y[label]
            cols[f"s::{label}"] = self.s[label]
        k = self.options["min_group_size"]
        for attr in self.attributes:
            codes = attr.codes
            if k > 0:  # suppressed groups are left out of the curves too
                sizes = np.bincount(attr.codes, minlength=len(attr.names))
                codes = np.where(sizes[attr.codes] < k, -1, attr.codes)
            cols[f"g::{attr.name}"] = pd.Categorical.from_codes(codes, categories=attr.names)
        return pd.DataFrame(cols)

def _joint_codes(codes: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One code per observed combination of every attribute's group, and per attribute the map
    joint code -> its group code (so one permutation moves all attributes of a row together)."""
    key = pd.MultiIndex.from_arrays([np.asarray(c) for c in codes]) if len(codes) > 1 else \
        pd.Index(np.asarray(codes[0]))
    joint, uniq = pd.factorize(key)
    if len(codes) == 1:
        return joint.astype(np.int64), [np.asarray(uniq, dtype=np.int64)]
    return joint.astype(np.int64), [np.asarray(uniq.get_level_values(i), dtype=np.int64)
                                    for i in range(len(codes))]


def _tidy(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for col in columns:
        if col not in frame.columns:
            frame[col] = "" if col in ("reason", "detail") else np.nan
    out = frame[list(columns)].copy()
    for col in ("reason", "detail", "group"):
        if col in out.columns:
            out[col] = out[col].fillna("").astype(str)
    return out.reset_index(drop=True)

def _undefined_warnings(table: pd.DataFrame, *, per_group_lines: int = 10) -> list[str]:
    """Lines for the (attribute, group) cells whose AUC is undefined (a single class), any label.

    One line per group while an attribute has at most ``per_group_lines`` such groups; above
    that one line per attribute (the count by reason and a few examples), so thousands of
    groups give a handful of lines, in time linear in the table.
    """
    auc = table[(table["metric"] == "auc") & table["estimate"].isna()
                & ~table["reason"].str.startswith("suppressed") & (table["label"] != MACRO_LABEL)]
    if auc.empty:
        return []
    auc = auc[["attribute", "group", "label", "reason"]].astype(str)
    out = []
    for attr in dict.fromkeys(auc["attribute"]):
        part = auc[auc["attribute"] == attr]
        firsts = part.drop_duplicates(["group"])
        if len(firsts) <= per_group_lines:
            for group in firsts["group"]:
                rows = part[part["group"] == group]
                labels = list(dict.fromkeys(rows["label"]))
                more = "" if len(labels) <= 6 else ", ..."
                reason = rows["reason"].iloc[0] or "undefined"
                out.append(f"AUC undefined for {attr}={group} ({reason}) for label(s) "
                           f"{', '.join(labels[:6])}{more}")
            continue
        by_reason = firsts["reason"].replace("", "undefined").value_counts(sort=True)
        reasons = "; ".join(f"{r}: {c:,}" for r, c in by_reason.items())
        examples = ", ".join(f"{attr}={g}" for g in firsts["group"].iloc[:5])
        labels = list(dict.fromkeys(part["label"]))
        out.append(f"AUC undefined for {len(firsts):,} groups of {attr} ({reasons}) for "
                   f"label(s) {', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}; "
                   f"e.g. {examples} (every cell, with its reason, is in evaluation.csv)")
    return out


#: why a bootstrap interval can miss its own point estimate, per metric (docs/metrics.md)
_SHIFT_REASONS = {
    "ece": "binned ECE is biased upward and resampling adds more upward bias (duplicated rows "
           "make bins noisier), so the replicates sit above the estimate; read the interval as "
           "the spread of the resampled ECE, not as a range around the estimate",
}


def _shifted_ci_warnings(table: pd.DataFrame, confidence: float) -> list[str]:
    """One line per metric whose bootstrap CI excludes its own point estimate in some cells
    (a biased statistic under resampling, most often ECE; macro gaps, whose percentile interval
    of the replicate-wise mean cannot reach 0), so no reader takes it for an error. ``table``
    is the per-group table or the summary table (no ``group`` column: the cell is the attribute).
    Every metric and summary is checked."""
    t = table[np.isfinite(table["estimate"]) & np.isfinite(table["ci_low"])
              & np.isfinite(table["ci_high"])]
    off = t[(t["estimate"] < t["ci_low"]) | (t["estimate"] > t["ci_high"])]
    if off.empty:
        return []
    totals = t["metric"].value_counts()
    per_group = "group" in table.columns
    if not per_group:
        return [_shifted_summary_warning(off, totals, confidence)]
    out = []
    for metric, part in off.groupby("metric", sort=False):
        total = int(totals.get(metric, 0))
        first = part.iloc[0]
        if per_group:
            where = (first["group"] if first["attribute"] == "overall"
                     else f"{first['attribute']}={first['group']}")
        else:
            where = f"by {first['attribute']}"
        above = int((part["estimate"] < part["ci_low"]).sum())
        base = str(metric)
        why = _SHIFT_REASONS.get(base) or next(
            (r for k, r in _SHIFT_REASONS.items() if base.startswith(f"{k}_")), None)
        if why is None and first["label"] == MACRO_LABEL:
            why = ("a macro summary's interval is the percentile interval of the replicate-wise "
                   "mean over labels, which is biased for gaps (a max - min) and need not "
                   "contain the mean of the labels' estimates")
        why = why or "the statistic is biased under resampling"
        kind = "cells" if per_group else "summaries"
        out.append(
            f"{metric}: the {confidence:.0%} bootstrap CI excludes the point estimate in "
            f"{len(part)} of {total} {kind} ({above} with every bound above it; e.g. "
            f"{first['label']}, {where}): {why}")
    return out


def _shifted_summary_warning(off: pd.DataFrame, totals: pd.Series, confidence: float) -> str:
    """One line naming every summary whose CI excludes its estimate somewhere (with counts)."""
    counts = off["metric"].value_counts(sort=False)
    names = ", ".join(f"{m} ({int(c)} of {int(totals.get(m, 0))})" for m, c in counts.items())
    first = off.iloc[0]
    macro = bool((off["label"] == MACRO_LABEL).any())
    return (f"summaries: the {confidence:.0%} bootstrap CI excludes the point estimate for "
            f"{len(counts)} summary metric(s) in {len(off)} cell(s) (e.g. {first['label']}, by "
            f"{first['attribute']}): {names}. Max/min-type summaries (gaps, ratios, *_to_overall, "
            "worst group) are biased under resampling"
            + (" and macro summaries are percentile intervals of the replicate-wise mean over "
               "labels" if macro else "")
            + "; read such an interval as the spread of the resampled statistic, not as a range "
              "around the estimate (gaps: the pairwise interval, --gap-ci pairwise, reaches 0).")
