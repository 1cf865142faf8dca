"""The :class:`Evaluation` returned by :func:`fairfoundry.evaluate` and its files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

__all__ = ["Evaluation", "BY_GROUP_COLUMNS", "SUMMARY_COLUMNS", "OUTPUT_FILES", "TABLE_FILES"]

#: columns of :attr:`Evaluation.by_group` and ``evaluation.csv``.
BY_GROUP_COLUMNS = ("label", "attribute", "group", "metric", "estimate", "ci_low", "ci_high", "n",
                    "reason")
#: columns of :attr:`Evaluation.summary_table` (``summaries`` in ``summary.json``).
SUMMARY_COLUMNS = ("label", "attribute", "metric", "estimate", "ci_low", "ci_high", "p_value",
                   "reason", "detail")
#: files written by :meth:`Evaluation.save` (``figures/`` holds every figure as PNG and SVG).
OUTPUT_FILES = ("evaluation.csv", "summary.json", "report.html", "figures")
#: table files :meth:`Evaluation.save` writes when asked (``tables=("md", "tex")``).
TABLE_FILES = {"md": "tables.md", "tex": "tables.tex"}
SCHEMA_VERSION = 1


@dataclass
class Evaluation:
    """Result of :func:`fairfoundry.evaluate`.

    Attributes
    ----------
    by_group : DataFrame
        Tidy per-group metrics: ``label, attribute, group, metric, estimate, ci_low, ci_high, n,
        reason``. ``attribute == "overall"`` rows hold the whole report split; ``label ==
        "macro"`` rows are means over labels; ``label == "any_finding"`` rows hold the
        underdiagnosis rate (multi-label). ``reason`` says why an estimate is NaN (one class in
        the group, or ``suppressed: n < K``).
    summary_table : DataFrame
        Gaps, ratios, worst groups, fairness differences: ``label, attribute, metric, estimate,
        ci_low, ci_high, p_value, reason, detail``.
    thresholds : DataFrame
        One row per label: ``threshold``, ``rule``, ``chosen_on_split``, ``n_rows_chosen_on``,
        ``on_report_split``.
    config : dict
        Every option of the run (re-running with it gives the same numbers).
    warnings : list of str
    suppressed : list of dict
        ``attribute, group, reason`` of the cells blanked by ``min_group_size``.
    info : dict
        Input source, fingerprint, row counts, report split.
    findings : DataFrame
        One row per (label, attribute, headline metric): the pair of groups with the smallest
        Holm-adjusted p-value, ``status`` ``"finding"`` (a headline) or ``"not clear"``
        (:func:`~fairfoundry.evaluation.find_findings`).
    too_few : DataFrame
        Groups with fewer than ``min_events`` of a headline metric's events ("too few to judge").
    findings_info : dict
        How the findings were tested and ranked (written to ``summary.json["findings"]``).
    """

    by_group: pd.DataFrame
    summary_table: pd.DataFrame
    thresholds: pd.DataFrame
    config: dict
    warnings: list[str] = field(default_factory=list)
    suppressed: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    curves: pd.DataFrame | None = field(default=None, repr=False)
    findings: pd.DataFrame | None = field(default=None, repr=False)
    too_few: pd.DataFrame | None = field(default=None, repr=False)
    findings_info: dict = field(default_factory=dict, repr=False)
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        from .._io import versions

        self.versions = versions()

    # -- views ---------------------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """The evaluated labels, in input order."""
        return list(self.config.get("label", []))

    @property
    def attributes(self) -> list[str]:
        """The evaluated attributes (sensitive columns, then intersections)."""
        return [a for a in dict.fromkeys(self.by_group["attribute"]) if a != "overall"]

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`by_group` (the tidy table written to ``evaluation.csv``)."""
        return self.by_group.copy()

    def get(self, metric: str, *, label: str | None = None, attribute: str | None = None):
        """Rows of :attr:`by_group` for ``metric`` (optionally one label / attribute)."""
        t = self.by_group[self.by_group["metric"] == metric]
        if label is not None:
            t = t[t["label"] == label]
        if attribute is not None:
            t = t[t["attribute"] == attribute]
        return t.reset_index(drop=True)

    @property
    def summary(self) -> dict:
        """Everything of ``summary.json``: summaries with CIs and p-values, thresholds and the split
        they were chosen on, warnings, suppressed cells, config, versions, input fingerprint."""
        from .._io import to_jsonable

        return to_jsonable({
            "schema_version": SCHEMA_VERSION,
            "kind": "fairfoundry.evaluation",
            "created": self.created,
            "input": self.info,
            "threshold_on_report_split": bool(self.info.get("threshold_on_report_split", False)),
            "uncertainty": self.info.get("uncertainty", {}),
            "thresholds": self.thresholds.to_dict(orient="records"),
            "summaries": self.summary_table.to_dict(orient="records"),
            "findings": {
                **self.findings_info,
                "rows": [] if self.findings is None else self.findings.to_dict(orient="records"),
                "too_few_to_judge": [] if self.too_few is None
                else self.too_few.to_dict(orient="records"),
            },
            "warnings": list(self.warnings),
            "suppressed": list(self.suppressed),
            "config": self.config,
            "seed": self.config.get("seed"),
            "versions": self.versions,
        })

    # -- files ---------------------------------------------------------------------------------

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :attr:`summary` as JSON (atomically; NaN -> null)."""
        from .._io import write_json_atomic

        return write_json_atomic(path, self.summary)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :attr:`by_group` as CSV (atomically). Text cells that a spreadsheet would run
        as a formula (a group named ``=HYPERLINK(...)``) are neutralised with a leading ``'``
        (:func:`fairfoundry._io.neutralise_formulas`)."""
        from .._io import write_table_atomic

        return write_table_atomic(path, self.by_group, report=True)

    def to_html(self, path: str | os.PathLike, *,
                figures_dir: str | os.PathLike | None = None) -> Path:
        """Write the self-contained HTML report (plots embedded; opens offline). With
        ``figures_dir`` every figure is also written there as PNG and SVG."""
        from .._io import write_text_atomic
        from ..report import evaluation_report_html

        return write_text_atomic(path, evaluation_report_html(self, figures_dir=figures_dir))

    def _repr_html_(self) -> str:
        """Jupyter's view: the findings, the summary of gaps and the main per-group table."""
        from ..report import evaluation_summary_html

        return evaluation_summary_html(self)

    def to_markdown(self, path: str | os.PathLike | None = None, **kwargs) -> str:
        """The per-group and gaps tables as Markdown (for a paper or a README); written
        atomically to ``path`` when given. ``labels=``, ``metrics=``, ``gaps=``, ``digits=`` as
        :func:`fairfoundry.report.publication_tables`."""
        from ..report import markdown_tables

        text = markdown_tables(self, **kwargs)
        if path is not None:
            from .._io import write_text_atomic

            write_text_atomic(path, text)
        return text

    def to_latex(self, path: str | os.PathLike | None = None, **kwargs) -> str:
        """The per-group and gaps tables as LaTeX ``table`` floats (booktabs); written
        atomically to ``path`` when given. Options as :meth:`to_markdown`."""
        from ..report import latex_tables

        text = latex_tables(self, **kwargs)
        if path is not None:
            from .._io import write_text_atomic

            write_text_atomic(path, text)
        return text

    def save(self, out: str | os.PathLike, *, overwrite: bool = False,
             tables: tuple[str, ...] | list[str] = ()) -> Path:
        """Write ``evaluation.csv``, ``summary.json``, ``report.html`` and ``figures/`` (each
        figure of the report as PNG and SVG) into ``out``; with ``tables=("md", "tex")`` also
        ``tables.md`` / ``tables.tex``.

        Everything appears together or nothing does; files already there are replaced only with
        ``overwrite=True``.
        """
        from .._errors import FairfoundryError
        from .._io import prepare_out_dir, staged_dir

        bad = [t for t in tables if t not in TABLE_FILES]
        if bad:
            raise FairfoundryError(f"tables={bad[0]!r}: unknown table format",
                                   hint=f"choose from {', '.join(TABLE_FILES)}", param="tables")
        outputs = [*OUTPUT_FILES, *(TABLE_FILES[t] for t in tables)]
        out = prepare_out_dir(out, overwrite=overwrite, outputs=outputs)
        with staged_dir(out) as stage:
            self.to_csv(stage / "evaluation.csv")
            self.to_html(stage / "report.html", figures_dir=stage / "figures")
            if "md" in tables:
                self.to_markdown(stage / TABLE_FILES["md"])
            if "tex" in tables:
                self.to_latex(stage / TABLE_FILES["tex"])
            self.to_json(stage / "summary.json")
        return out
