"""``fairfoundry.evaluate``: per-sample predictions in, per-group metrics with CIs out.

The numbers all come from :func:`fairfoundry.metrics.evaluate_groups` (one call per label and
attribute, every metric and summary on the same bootstrap replicates); this module validates the
input, chooses thresholds on a split that is not reported, builds the groups (bins,
intersections), suppresses small cells and assembles the tidy outputs.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean
from ..groups import attribute_groups, combine_groups, intersection_attribute
from ..metrics import EngineOptions
from ._inputs import (
    RowNamer,
    binary_labels,
    check_unique_ids,
    find_id_column,
    find_score_column,
    load_table,
    numeric_scores,
    resolve_column,
)
from ._plan import EvaluationPlan, _Attribute
from ._result import Evaluation

log = logging.getLogger(__name__)

__all__ = ["NO_FINDING_RULES", "evaluate", "prepare_evaluation"]

#: how a multi-label model without a "no finding" output calls a sample "no finding"
#: (``no_finding_rule=``; see :func:`evaluate`)
NO_FINDING_RULES = ("all_below", "product")
#: name of the ``product`` rule's score in the thresholds table
PRODUCT_SCORE_NAME = "prod(1 - p_k)"



# -- preparation ---------------------------------------------------------------------------------


def _as_list(value, *, option: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    out: list[str] = []
    for v in value:
        out.extend(_as_list(v, option=option) if isinstance(v, str) else [str(v)])
    return out


def prepare_evaluation(
    data,
    *,
    label: str | Sequence[str],
    score: str | Sequence[str] | None = None,
    sensitive: str | Sequence[str],
    intersect: Sequence[Sequence[str]] | None = None,
    bins: dict[str, Sequence[float]] | None = None,
    split_col: str | None = "split",
    report_split: str = "test",
    threshold: float | str = "youden",
    threshold_split: str = "val",
    allow_threshold_on_report_split: bool = False,
    bootstrap: int = 0,
    ci_method: str = "percentile",
    gap_ci: str = "pairwise",
    confidence: float = 0.95,
    cluster: str | None = None,
    reference: dict[str, str] | None = None,
    min_group_size: int = 0,
    min_events: int = 10,
    headline_permutations: int = 500,
    headline_metrics: Sequence[str] | None = None,
    headline_labels: Sequence[str] | None = None,
    degenerate_ci: str = "wilson",
    val_fraction: float | None = None,
    split_by: str | None = None,
    id_col: str | None = None,
    seed: int = 0,
    scores_are_logits: bool = False,
    ece_bins: int = 10,
    ece_strategy: str = "uniform",
    permutations: int = 0,
    no_finding_score: str | None = None,
    no_finding_rule: str = "all_below",
    n_jobs: int = 1,
    source_name: str | None = None,
) -> EvaluationPlan:
    """Validate everything and choose thresholds; see :func:`evaluate` for the parameters.

    The steps, each a function of this module: :func:`_resolve_columns` (labels, scores,
    attributes, bins, ids), :func:`_resolve_splits` (split column or a generated val split, the
    reported rows), :func:`_threshold_rows` (where a rule-based threshold is chosen),
    :func:`_labels_and_scores` (checked on every used row), :func:`_choose_thresholds`,
    :func:`_build_attributes` (groups and intersections of the reported rows),
    :func:`_resolve_reference`, :func:`_resolve_cluster`, then the validated engine options and
    the recorded config.
    """
    from ..metrics import parse_threshold

    table = load_table(data)
    if source_name:
        table.source = source_name
    frame, source = table.frame, table.source
    if table.path is not None:
        source = table.path.name
    cols = _resolve_columns(frame, source, label=label, score=score, sensitive=sensitive,
                            intersect=intersect, bins=bins, id_col=id_col)
    rows = cols.rows
    split = _resolve_splits(frame, source, rows, split_col=split_col, report_split=report_split,
                            threshold_split=threshold_split, val_fraction=val_fraction,
                            split_by=split_by, seed=seed)
    rule = parse_threshold(threshold)
    thr_mask, on_report, thr_split_name = _threshold_rows(
        rule, split, report_split=report_split,
        allow_threshold_on_report_split=allow_threshold_on_report_split)
    report_mask = split.report_mask
    used = report_mask | (thr_mask if thr_mask is not None else False)
    y_all, s_all, nf_all, no_finding_score = _labels_and_scores(
        frame, source, rows, used, cols.labels, cols.scores, logits=scores_are_logits,
        no_finding_score=no_finding_score, no_finding_rule=no_finding_rule)
    rep = report_mask[used]
    if not rep.any():
        raise FairfoundryError(f"no rows in the report split {report_split!r}")
    thresholds, nf_threshold = _choose_thresholds(
        cols.labels, y_all, s_all, rule, None if thr_mask is None else thr_mask[used],
        thr_split_name=thr_split_name, on_report=on_report, nf_all=nf_all,
        no_finding_score=no_finding_score)
    if nf_all is not None:
        nf_all = nf_all[rep]

    split_txt = f" of split {report_split!r}" if split.values is not None else ""
    attributes, warnings = _build_attributes(frame, rows, report_mask, cols.sens, cols.inter,
                                             cols.bins, split_txt=split_txt)
    ref = _resolve_reference(reference, attributes, split_txt=split_txt)
    cluster, clus = _resolve_cluster(frame, source, rows, report_mask, cluster)

    # the engine's options, validated once here and passed to every engine call
    engine = EngineOptions(n_bootstrap=bootstrap, n_permutations=permutations,
                           ci_method=ci_method, gap_ci=gap_ci, confidence=confidence, seed=seed,
                           ece_bins=ece_bins, ece_strategy=ece_strategy, n_jobs=n_jobs,
                           degenerate_ci=degenerate_ci,
                           aliases={"n_bootstrap": "bootstrap", "n_permutations": "permutations"})
    for name, value in (("min_group_size", min_group_size), ("min_events", min_events),
                        ("headline_permutations", headline_permutations)):
        if int(value) < 0:
            raise FairfoundryError(f"{name}={value!r}: must be >= 0", param=name)
    family = _headline_family(headline_metrics, headline_labels, cols.labels)
    if on_report:
        warnings.insert(0, "THRESHOLDS WERE CHOSEN ON THE REPORTED ROWS "
                           f"({thr_split_name}): threshold-dependent metrics are optimistic")

    options = {"bootstrap": engine.n_bootstrap, "permutations": engine.n_permutations,
               "ci_method": engine.ci_method, "gap_ci": engine.gap_ci,
               "confidence": engine.confidence, "seed": engine.seed,
               "ece_bins": engine.ece_bins, "ece_strategy": engine.ece_strategy,
               "min_group_size": int(min_group_size), "min_events": int(min_events),
               "degenerate_ci": engine.degenerate_ci,
               "headline_permutations": int(headline_permutations), "n_jobs": engine.n_jobs,
               **family}
    config = {
        "input": table.source, "label": cols.labels, "score": cols.scores, "sensitive": cols.sens,
        "intersect": cols.inter, "bins": cols.bins, "split_col": split.column,
        "report_split": report_split, "threshold": str(rule), "threshold_split": thr_split_name,
        "allow_threshold_on_report_split": bool(allow_threshold_on_report_split),
        "cluster": cluster, "reference": ref, "id_col": cols.id_col,
        "scores_are_logits": bool(scores_are_logits), "no_finding_score": no_finding_score,
        "no_finding_rule": "score" if no_finding_score is not None else
        str(no_finding_rule).lower().replace("-", "_"),
        "val_fraction": None if val_fraction is None else float(val_fraction),
        "split_by": split_by if val_fraction is not None else None,
        **options,
    }
    return EvaluationPlan(
        source=table.source, fingerprint=table.fingerprint, n_rows=int(len(frame)),
        labels=cols.labels, score_cols=cols.scores, y={k: v[rep] for k, v in y_all.items()},
        s={k: v[rep] for k, v in s_all.items()}, attributes=attributes, cluster=clus,
        thresholds=thresholds, threshold_on_report_split=on_report,
        report_split=report_split if split.values is not None else None, reference=ref,
        options=options, config=config, no_finding=nf_all, no_finding_threshold=nf_threshold,
        warnings=warnings, engine=engine, generated_split=split.generated,
    )


# -- the steps of prepare_evaluation -----------------------------------------------------------


def _headline_family(metrics, labels, all_labels: list[str]) -> dict:
    """The pre-specified headline family (``headline_metrics`` / ``headline_labels``), checked."""
    from ._findings import HEADLINE_METRICS
    from ._plan import UNDERDIAGNOSIS_LABEL

    out: dict = {}
    for name, given, known, what, norm in (
            ("headline_metrics", metrics, list(HEADLINE_METRICS), "a headline metric", str.lower),
            ("headline_labels", labels, [*all_labels, UNDERDIAGNOSIS_LABEL], "an evaluated label", str)):
        out[name] = None
        if given is None:
            continue
        vals = [norm(str(v).strip()) for v in ([given] if isinstance(given, str) else given)]
        bad = [v for v in vals if v not in known]
        if bad or not vals:
            raise FairfoundryError(f"{name}={', '.join(bad or vals)!r}: not {what}",
                                   hint="choose from " + ", ".join(known), param=name)
        out[name] = list(dict.fromkeys(vals))
    return out


@dataclass(frozen=True)
class _Columns:
    labels: list[str]
    scores: list[str]
    sens: list[str]
    inter: list[list[str]]
    bins: dict[str, list[float]]
    id_col: str | None
    rows: RowNamer


def _resolve_columns(frame, source, *, label, score, sensitive, intersect, bins,
                     id_col) -> _Columns:
    """Every named column resolved against the input (labels, scores, attributes,
    intersections, bins, sample ids), ids checked for duplicates."""
    labels = _as_list(label, option="label")
    if not labels:
        raise FairfoundryError("no label column given", hint="pass --label COLUMN (repeatable)")
    labels = [resolve_column(frame, c, option="--label", source=source) for c in labels]
    if len(set(labels)) != len(labels):
        raise FairfoundryError(f"--label lists a column twice: {', '.join(labels)}")
    scores = _as_list(score, option="score")
    if scores:
        if len(scores) != len(labels):
            raise FairfoundryError(
                f"{len(scores)} --score column(s) for {len(labels)} --label column(s)",
                hint="give one --score per --label, in the same order, or none to auto-detect")
        scores = [resolve_column(frame, c, option="--score", source=source) for c in scores]
    else:
        scores = [find_score_column(frame, lab, single=len(labels) == 1, source=source)
                  for lab in labels]
    sens = _as_list(sensitive, option="sensitive")
    if not sens:
        raise FairfoundryError("no sensitive attribute given",
                               hint="pass --sensitive COLUMN (repeatable), e.g. --sensitive sex")
    sens = [resolve_column(frame, c, option="--sensitive", source=source) for c in sens]
    inter = [[resolve_column(frame, c, option="--intersect", source=source)
              for c in _as_list(group, option="intersect")] for group in (intersect or [])]
    for group in inter:
        if len(group) < 2:
            raise FairfoundryError(f"--intersect needs two or more columns, got {group}",
                                   hint="for example --intersect sex,age")
    bins = {resolve_column(frame, c, option="--bins", source=source): list(map(float, e))
            for c, e in (bins or {}).items()}

    if id_col is not None:
        id_col = resolve_column(frame, id_col, option="--id", source=source)
    else:
        id_col = find_id_column(frame)
    rows = RowNamer(frame, id_col)
    if id_col is not None:
        check_unique_ids(frame, id_col)
    return _Columns(labels, scores, sens, inter, bins, id_col, rows)


@dataclass(frozen=True)
class _Splits:
    values: np.ndarray | None      # split name of every row (None: no split)
    column: str | None
    names: list[str]               # the split names present
    report_mask: np.ndarray        # rows that are reported
    threshold_split: str
    generated: dict | None         # --val-fraction record


def _resolve_splits(frame, source, rows, *, split_col, report_split, threshold_split,
                    val_fraction, split_by, seed) -> _Splits:
    """The split of each row (a split column, or a seeded val split with ``val_fraction``) and
    the reported rows."""
    split = None
    if split_col:
        found = resolve_column(frame, split_col, option="--split-col", source=source) \
            if split_col != "split" else next((c for c in frame.columns if str(c).lower() == "split"),
                                              None)
        if found is not None:
            split_col = str(found)
            split = frame[split_col].astype(object).where(frame[split_col].notna(), "").astype(str)
            split = split.to_numpy()
        else:
            split_col = None
    generated = None
    if val_fraction is not None:
        split, split_col, generated = _generated_split(
            frame, split, split_col, report_split, float(val_fraction), split_by, seed,
            source, rows)
        threshold_split = "val"
    values = sorted(set(split)) if split is not None else []
    if split is not None and report_split not in values:
        raise FairfoundryError(f"--report-split {report_split!r} not found in column {split_col!r}",
                               hint=did_you_mean(report_split, values, what="splits"))
    report_mask = (split == report_split) if split is not None else np.ones(len(frame), bool)
    return _Splits(split, split_col, values, report_mask, threshold_split, generated)


def _threshold_rows(rule, split: _Splits, *, report_split, allow_threshold_on_report_split):
    """Rows on which a rule-based threshold is chosen: ``(mask or None, on_report, name)``;
    never the reported split unless allowed."""
    if not rule.needs_labels:
        return None, False, None
    threshold_split, values, split_col = split.threshold_split, split.names, split.column
    if split.values is None:
        if not allow_threshold_on_report_split:
            raise FairfoundryError(
                f"threshold {str(rule)!r} must be chosen on a validation split, but the input "
                "has no split column",
                hint="pass a fixed --threshold (e.g. 0.5), name the split column with "
                     "--split-col, or pass --allow-threshold-on-report-split to choose it on the "
                     "reported rows (optimistic)")
        return split.report_mask, True, "(all rows)"
    if threshold_split not in values:
        raise FairfoundryError(
            f"--threshold-split {threshold_split!r} not found in column {split_col!r}",
            hint=did_you_mean(threshold_split, values, what="splits"))
    if threshold_split == report_split and not allow_threshold_on_report_split:
        raise FairfoundryError(
            f"the threshold would be chosen on the reported split {report_split!r}",
            hint="choose it on another split (--threshold-split val), pass a fixed "
                 "--threshold, or pass --allow-threshold-on-report-split (optimistic)")
    return split.values == threshold_split, threshold_split == report_split, threshold_split


def _labels_and_scores(frame, source, rows, used, labels, scores, *, logits, no_finding_score,
                       no_finding_rule="all_below"):
    """Binary labels and numeric scores of every used row (checked, naming the row), and the
    optional dedicated "no finding" score."""
    used_frame = frame.loc[used].reset_index(drop=True)
    orig_index = np.flatnonzero(used)

    def _namer(i: int) -> str:
        return rows(int(orig_index[i]))

    y_all: dict[str, np.ndarray] = {}
    s_all: dict[str, np.ndarray] = {}
    for lab, sc in zip(labels, scores, strict=True):
        y_all[lab] = binary_labels(used_frame, lab, _namer)
        s_all[lab] = numeric_scores(used_frame, sc, _namer, logits=logits)
    nf_all = None
    no_finding_rule = str(no_finding_rule).lower().replace("-", "_")
    if no_finding_rule not in NO_FINDING_RULES:
        raise FairfoundryError(f"no_finding_rule={no_finding_rule!r} is not one of "
                               f"{', '.join(NO_FINDING_RULES)}", param="no_finding_rule",
                               hint=did_you_mean(no_finding_rule, NO_FINDING_RULES, what="rules"))
    if no_finding_rule == "product" and no_finding_score is not None:
        raise FairfoundryError("no_finding_rule='product' and no_finding_score= both given: the "
                               "product is itself a no-finding score; give one",
                               param="no_finding_rule")
    if no_finding_score is not None:
        no_finding_score = resolve_column(frame, no_finding_score, option="--no-finding-score",
                                          source=source)
        nf_all = numeric_scores(used_frame, no_finding_score, _namer, logits=logits)
    elif no_finding_rule == "product":
        if len(labels) < 2:
            raise FairfoundryError("no_finding_rule='product' needs two or more labels, got "
                                   f"{len(labels)}", param="no_finding_rule")
        # P(no finding) if the labels were independent given the image: prod_k (1 - p_k)
        nf_all = np.prod([1.0 - s_all[lab] for lab in labels], axis=0)
    return y_all, s_all, nf_all, no_finding_score


def _choose_thresholds(labels, y_all, s_all, rule, sel, *, thr_split_name, on_report, nf_all,
                       no_finding_score) -> tuple[list[dict], float | None]:
    """One threshold per label (and for the "no finding" score) on the rows ``sel`` of the used
    rows (None: a fixed threshold)."""
    from ..metrics import choose_threshold

    thresholds: list[dict] = []
    for lab in labels:
        if rule.needs_labels:
            try:
                value = choose_threshold(y_all[lab][sel], s_all[lab][sel], rule)
            except FairfoundryError as err:
                raise FairfoundryError(f"label {lab!r}: {err.message}", hint=err.hint) from err
            n_on = int(sel.sum())
        else:
            value, n_on = float(rule.value), 0
        thresholds.append({"label": lab, "threshold": value, "rule": str(rule), "method": rule.method,
                           "chosen_on_split": thr_split_name, "n_rows_chosen_on": n_on,
                           "on_report_split": on_report})
    nf_threshold = None
    if nf_all is not None:
        any_pos = np.zeros(len(nf_all), dtype=bool)
        for lab in labels:
            any_pos |= y_all[lab].astype(bool)
        sel = sel if rule.needs_labels else None
        nf_threshold = (choose_threshold((~any_pos[sel]).astype(int), nf_all[sel], rule)
                        if sel is not None else float(rule.value))
        nf_name = no_finding_score if no_finding_score is not None else PRODUCT_SCORE_NAME
        thresholds.append({"label": f"{nf_name} (no finding)", "threshold": nf_threshold,
                           "rule": str(rule), "method": rule.method,
                           "chosen_on_split": thr_split_name,
                           "n_rows_chosen_on": int(sel.sum()) if sel is not None else 0,
                           "on_report_split": on_report})
    return thresholds, nf_threshold


def _build_attributes(frame, rows, report_mask, sens, inter, bins, *,
                      split_txt) -> tuple[list[_Attribute], list[str]]:
    """Groups of every sensitive column and intersection on the reported rows (the one group
    model), and warnings for combinations without rows."""
    per_col: dict[str, pd.Categorical] = {}
    for col in dict.fromkeys([*sens, *[c for g in inter for c in g]]):
        full = attribute_groups(frame[col], edges=bins.get(col), rows=rows,
                                name=f"bins[{col!r}]: column {col!r}")
        per_col[col] = full[report_mask]
    attributes: list[_Attribute] = []
    for col in sens:
        cat = per_col[col]
        counts = pd.Series(cat).value_counts()
        empty = [str(g) for g in cat.categories if counts.get(g, 0) == 0]
        if empty:
            raise FairfoundryError(
                f"group {col}={empty[0]!r} has no rows{split_txt}"
                + (f" (bins {bins[col]})" if col in bins else " (it has rows in other splits)"),
                hint=("change the --bins edges so that every bin has rows" if col in bins else
                      "drop those rows or map the value to another group before evaluating"))
        codes = np.asarray(cat.codes, dtype=np.int64)
        attributes.append(_Attribute(col, [col], codes, [str(c) for c in cat.categories],
                                     binned=col in bins))
    warnings: list[str] = []
    for group in inter:
        codes, names = combine_groups(group, [(np.asarray(per_col[c].codes),
                                               [str(x) for x in per_col[c].categories])
                                              for c in group])
        codes = np.asarray(codes, dtype=np.int64)
        present = np.bincount(codes, minlength=len(names)) > 0
        if not present.all():
            missing = [n for n, p in zip(names, present, strict=True) if not p]
            warnings.append(f"{len(missing)} combination(s) of {' x '.join(group)} have no rows"
                            f"{split_txt}: {', '.join(map(str, missing[:8]))}")
            remap = np.cumsum(present) - 1
            codes = remap[codes]
            names = [n for n, p in zip(names, present, strict=True) if p]
        attributes.append(_Attribute(intersection_attribute(group), list(group), codes,
                                     [str(n) for n in names]))
    return attributes, warnings


def _resolve_reference(reference, attributes, *, split_txt) -> dict[str, str]:
    """``{attribute: reference group}``, each checked against the evaluated groups."""
    ref = {}
    for attr_name, group_name in (reference or {}).items():
        match = next((a for a in attributes if a.name == attr_name), None)
        if match is None:
            raise FairfoundryError(f"--reference {attr_name}={group_name}: {attr_name!r} is not an "
                                   "evaluated attribute",
                                   hint=did_you_mean(attr_name, [a.name for a in attributes],
                                                     what="attributes"))
        if str(group_name) not in match.names:
            raise FairfoundryError(
                f"--reference {attr_name}={group_name}: unknown reference group {group_name!r}"
                f" (not among the rows{split_txt})",
                hint=did_you_mean(str(group_name), match.names, what=f"groups of {attr_name}"))
        ref[attr_name] = str(group_name)
    return ref


def _resolve_cluster(frame, source, rows, report_mask, cluster):
    """The cluster column (patient) and its integer codes on the reported rows."""
    if cluster is None:
        return None, None
    cluster = resolve_column(frame, cluster, option="--cluster", source=source)
    cvals = frame.loc[report_mask, cluster].reset_index(drop=True)
    if cvals.isna().any():
        i = int(np.flatnonzero(cvals.isna().to_numpy())[0])
        raise FairfoundryError(f"--cluster column {cluster!r} is empty at "
                               f"{rows(np.flatnonzero(report_mask)[i])}",
                               hint="every row needs its patient id")
    return cluster, pd.factorize(cvals, sort=True)[0].astype(np.int64)


def _generated_split(frame, split, split_col, report_split, fraction, split_by, seed, source,
                     rows):
    """A seeded ``val`` split of whole ``split_by`` units (patients) of the rows that would be
    reported; the rest keeps the name ``report_split``. Returns (split, column, record)."""
    if not 0.0 < fraction < 1.0:
        raise FairfoundryError(f"val_fraction={fraction!r}: must be in (0, 1)", param="val_fraction")
    if report_split == "val":
        raise FairfoundryError("val_fraction=...: makes a split named 'val'; choose another "
                               "report split than 'val'", param="val_fraction")
    base = (split == report_split) if split is not None else np.ones(len(frame), dtype=bool)
    if split is not None and not base.any():
        raise FairfoundryError(f"--report-split {report_split!r} not found in column "
                               f"{split_col!r}")
    if split_by is not None:
        split_by = resolve_column(frame, split_by, option="split_by", source=source)
        units = frame[split_by]
        missing = units.isna().to_numpy() & base
        if missing.any():
            raise FairfoundryError(f"split_by={split_by!r}: the column is empty at "
                                   f"{rows(int(np.flatnonzero(missing)[0]))}",
                                   hint="every row needs its patient id", param="split_by")
        codes = np.full(len(frame), -1, dtype=np.int64)
        codes[base] = pd.factorize(units[base], sort=True)[0]
    else:
        codes = np.where(base, np.cumsum(base) - 1, -1)
    n_units = int(codes.max()) + 1
    n_val = int(round(fraction * n_units))
    if n_val < 1 or n_val >= n_units:
        raise FairfoundryError(f"val_fraction={fraction!r}: {n_units} unit(s) leave an empty "
                               "val or report part", hint="use more rows or another fraction",
                               param="val_fraction")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(7,))))
    val_units = np.zeros(n_units, dtype=bool)
    val_units[rng.choice(n_units, size=n_val, replace=False)] = True
    is_val = base & val_units[np.maximum(codes, 0)]
    new = np.where(is_val, "val", np.where(base, report_split, "")).astype(object)
    val_ids = (sorted(map(str, frame.loc[is_val, split_by].unique())) if split_by is not None
               else [int(i) for i in np.flatnonzero(is_val)])
    record = {"val_fraction": fraction, "split_by": split_by, "seed": int(seed),
              "from_split": report_split if split is not None else None,
              "n_units": n_units, "n_val_units": n_val, "n_val_rows": int(is_val.sum()),
              "n_report_rows": int((base & ~is_val).sum()),
              "val_units": val_ids}
    return new.astype(str), f"(generated: {fraction:g} of {split_by or 'rows'} as val)", record


def evaluate(data, *, progress: Callable[[int], None] | None = None, **options) -> Evaluation:
    """Evaluate how differently a model treats each group, with bootstrap CIs.

    Parameters
    ----------
    data : DataFrame or path to a CSV / TSV / Parquet file
        One row per sample: label column(s) (0/1), score column(s), protected attributes.
    label : column name or list of names
        Binary ground truth; several names make a multi-label evaluation (one set of metrics per
        label, plus ``label="macro"`` means over labels and the underdiagnosis rate).
    score : column name or list (one per label), optional
        Model probabilities. Auto-detected when omitted: for label ``L`` the first of
        ``prob_L, p_L, score_L, pred_L, L_prob, L_score, ...``; with one label also
        ``y_score, score, prob, pred, ...``.
    sensitive : column name or list
        Protected attributes; every value is its own group (no binarisation), missing values form
        the group ``unknown``.
    intersect : list of lists of column names, optional
        Intersections to evaluate as extra attributes (named ``"sex&age"``).
    bins : dict column -> edges, optional
        Left-closed bins for numeric attributes (:func:`fairfoundry.data.bin_values`), e.g.
        ``{"age": [40, 60, 80]}``.
    split_col : str or None
        Column naming each row's split (used when present). None: no split.
    report_split : str
        Split whose rows are reported (default ``"test"``).
    threshold : float or str
        A fixed value, or a rule chosen on ``threshold_split``: ``"youden"``, ``"max_f1"``,
        ``"sens=0.9"``, ``"spec=0.95"`` (:func:`fairfoundry.metrics.choose_threshold`).
        Predictions are ``score >= threshold``. One threshold per label.
    threshold_split : str
        Split on which a rule-based threshold is chosen (default ``"val"``).
    allow_threshold_on_report_split : bool
        Allow choosing the threshold on the reported rows (optimistic); flagged in every output.
    bootstrap : int
        Bootstrap replicates for CIs (0: point estimates only).
    ci_method : {"percentile", "bca"}
        Interval of per-group metrics, ratios and differences (BCa: Efron 1987).
    gap_ci : {"pairwise", "percentile"}
        Interval of gaps (max - min): ``"pairwise"`` (default) bounds the gap by simultaneous
        (Bonferroni) intervals of every pairwise group difference, so it reaches 0 when no two
        groups differ significantly; ``"percentile"`` is the plain interval of the max - min
        replicates (never reaches 0). Recorded in ``summary.json["uncertainty"]``.
    confidence : float
        CI level (default 0.95).
    cluster : str, optional
        Column of cluster ids (patient) resampled as a whole in the bootstrap.
    reference : dict attribute -> group, optional
        Reference group for the signed ``<metric>_vs_reference`` summaries.
    min_group_size : int
        Cells of groups with fewer rows are blanked (``reason="suppressed: n < K"``) and those
        groups are left out of the summaries and curves.
    headline_permutations : int
        Permutations (of whole patients with ``cluster``) of the Westfall-Young max-T
        adjustment that decides which differences are headlines (default 500; 0: Holm on
        normal p-values, which heavy-tailed patient clusters make anti-conservative).
    headline_metrics, headline_labels : list of str, optional
        A pre-specified headline family (e.g. ``["tpr"]`` and ``["Effusion"]`` for a primary
        analysis of Effusion sensitivity): only these metrics (``tpr``, ``fpr``, ``ppv``,
        ``underdiagnosis_rate``) and labels are tested, so the family-wise adjustment covers
        fewer comparisons; the rest stays in the tables. Default: the exploratory family of
        every headline metric and label. Fix them before looking at the results; recorded in
        ``summary.json["findings"]["family"]``.
    degenerate_ci : {"wilson", "clopper_pearson", "none"}
        Interval of a proportion whose bootstrap interval collapses to a point (a rate of 0 or
        1): Wilson score (default) or Clopper-Pearson; recorded in
        ``summary.json["uncertainty"]["degenerate_ci"]``.
    val_fraction : float, optional
        Make a seeded validation split instead of using a split column: this fraction of the
        ``split_by`` units (e.g. patients) of the rows that would be reported becomes ``val``
        (thresholds are chosen there), the rest is reported. Recorded in
        ``summary.json["input"]["generated_split"]``.
    split_by : str, optional
        Column whose values are kept together by ``val_fraction`` (e.g. ``patient_id``);
        default: one row per unit.
    min_events : int
        Fewest events of a metric's own denominator (positives for TPR, negatives for FPR,
        predicted positives for PPV, both classes for AUC) for a group to enter the headline
        findings; groups below are listed as "too few to judge" (default 10).
    id_col : str, optional
        Sample id column (checked for duplicates); auto-detected (``sample_id``, ``image_id``,
        ``Image Index``, ...).
    seed : int
        Seed of the bootstrap and permutations.
    scores_are_logits : bool
        Scores are logits: the sigmoid maps them to probabilities first (thresholds are on the
        probability scale).
    ece_bins : int
        Bins of the expected calibration error.
    ece_strategy : {"uniform", "quantile"}
        Equal-width or equal-mass ECE bins.
    permutations : int
        Permutation-test replicates for p-values of gaps (0: none).
    no_finding_score : str, optional
        A dedicated "no finding" score column for the underdiagnosis rate; without it a sample is
        predicted "no finding" by ``no_finding_rule``.
    no_finding_rule : {"all_below", "product"}
        How a multi-label model without a "no finding" output calls a sample "no finding" for the
        underdiagnosis rate. ``all_below`` (default): every label's score is below its own
        threshold. ``product``: a dedicated score :math:`\\prod_k (1 - p_k)` (the probability of
        no finding if the labels were independent given the image) called "no finding" at or
        above its own threshold, chosen by the ``threshold`` rule on the threshold split with
        "no finding" (no positive label) as the positive class, like a ``no_finding_score``
        column. Seyyed-Kalantari et al. (Nature Medicine 2021) thresholded their model's own
        "No Finding" output; neither rule is theirs.
    n_jobs : int
        Threads for the bootstrap (results do not depend on it).
    source_name : str, optional
        How to name a DataFrame input in messages and outputs (default ``"DataFrame"``).
    progress : callable, optional
        Called with the number of finished replicates (see
        :attr:`EvaluationPlan.total_replicates` for the total).

    Returns
    -------
    Evaluation
        ``.by_group`` (tidy: label, attribute, group, metric, estimate, ci_low, ci_high, n,
        reason), ``.summary`` (dict), ``.summary_table``, ``.to_frame()``, ``.to_json(path)``,
        ``.to_html(path)``.

    Raises
    ------
    FairfoundryError
        For every problem with the input, naming the column and row.

    Examples
    --------
    >>> import fairfoundry
    >>> from fairfoundry.datasets import nih_chexnet
    >>> ev = fairfoundry.evaluate(nih_chexnet(), label="Effusion", sensitive=["sex"])
    >>> ev.thresholds.loc[0, "chosen_on_split"]
    'val'
    """
    plan = prepare_evaluation(data, **options)
    return plan.run(progress=progress)


def _evaluate_signature() -> inspect.Signature:
    """``evaluate``'s signature: ``prepare_evaluation``'s keyword options plus ``progress``
    (one list of options and defaults, shown by ``help()`` and IDEs)."""
    params = list(inspect.signature(prepare_evaluation).parameters.values())
    progress = inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation="Callable[[int], None] | None")
    return inspect.Signature([*params, progress], return_annotation="Evaluation")


evaluate.__signature__ = _evaluate_signature()
