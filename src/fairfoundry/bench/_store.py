"""The results store of a grid: one DuckDB file, one writer (the grid's driver).

Tables:

- ``cells``: one row per cell: ``cell_id``, the axes (``dataset``, ``encoder``, ``adaptation``,
  ``mitigation``, ``label_fraction``, ``seed``), ``status`` (``pending``, ``done``, ``failed``),
  ``error``, ``wall_s``, ``config`` (JSON);
- ``results``: the cells' row-sets: ``cell_id``, the axes, ``label``, ``attribute``, ``group``,
  ``metric``, ``estimate``, ``ci_low``, ``ci_high`` and ``kind`` (``group``: a per-group metric;
  ``summary``: a gap, ratio, worst group, ...).

DuckDB allows one writing process at a time, so cells (local or Ray tasks) write Parquet row-sets
and only the driver ingests them; ingesting a cell again replaces its rows (idempotent), which
is what makes ``--resume`` after a kill give the same store as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import FairfoundryError

__all__ = ["ResultsStore", "leaderboard", "paired_differences", "simultaneous", "spread_over_seeds"]

_AXES = ("dataset", "encoder", "adaptation", "mitigation", "label_fraction", "seed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id VARCHAR PRIMARY KEY, dataset VARCHAR, encoder VARCHAR, adaptation VARCHAR,
    mitigation VARCHAR, label_fraction DOUBLE, seed INTEGER, status VARCHAR, error VARCHAR,
    wall_s DOUBLE, config VARCHAR);
CREATE TABLE IF NOT EXISTS results (
    cell_id VARCHAR, dataset VARCHAR, encoder VARCHAR, adaptation VARCHAR, mitigation VARCHAR,
    label_fraction DOUBLE, seed INTEGER, label VARCHAR, attribute VARCHAR, "group" VARCHAR,
    metric VARCHAR, estimate DOUBLE, ci_low DOUBLE, ci_high DOUBLE, kind VARCHAR);
CREATE TABLE IF NOT EXISTS probe (
    cell_id VARCHAR, dataset VARCHAR, encoder VARCHAR, adaptation VARCHAR, mitigation VARCHAR,
    label_fraction DOUBLE, seed INTEGER, step INTEGER, metric VARCHAR, attribute VARCHAR,
    "group" VARCHAR, estimate DOUBLE, ci_low DOUBLE, ci_high DOUBLE, n DOUBLE, reason VARCHAR);
"""
#: the fairness probe's curve columns (``probe.csv`` of a cell that fine-tunes with ``probe_every``)
_PROBE_COLS = ["step", "metric", "attribute", "group", "estimate", "ci_low", "ci_high", "n", "reason"]
_RESULT_COLS = ["cell_id", *_AXES, "label", "attribute", "group", "metric", "estimate", "ci_low", "ci_high",
                "kind"]


def _duckdb():
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - duckdb is in the `bench` extra
        raise FairfoundryError("the results store needs DuckDB", hint="pip install 'fairfoundry[bench]'") from exc
    return duckdb


class ResultsStore:
    """A grid's DuckDB database (``OUT/results.duckdb``); use as a context manager.

    Parameters
    ----------
    path : the database file
    read_only : open for queries only (any number of readers while no writer holds it)
    """

    def __init__(self, path: str | os.PathLike, *, read_only: bool = False):
        duckdb = _duckdb()
        self.path = Path(path)
        if read_only and not self.path.is_file():
            raise FairfoundryError(f"no results store at {self.path}", hint="run `fairfoundry bench run` first")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise FairfoundryError(f"cannot open the results store {self.path}: {exc}".splitlines()[0]) from exc
        if not read_only:
            self.con.execute(_SCHEMA)

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def register_cells(self, cells) -> None:
        """Add every cell as ``pending`` (cells already known keep their status)."""
        rows = [(c.cell_id, *(c.axes[a] for a in _AXES), json.dumps(c.model_dump(), sort_keys=True, default=str))
                for c in cells]
        self.con.executemany(
            "INSERT INTO cells (cell_id, dataset, encoder, adaptation, mitigation, label_fraction, seed, config, "
            "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (cell_id) DO NOTHING", rows)

    def set_status(self, cell_id: str, status: str, *, error: str | None = None, wall_s: float | None = None) -> None:
        self.con.execute("UPDATE cells SET status = ?, error = ?, wall_s = COALESCE(?, wall_s) WHERE cell_id = ?",
                         [status, error, None if wall_s is None or not np.isfinite(wall_s) else float(wall_s),
                          cell_id])

    def ingest(self, cell, rows_path: str | os.PathLike) -> int:
        """Replace the cell's rows by its Parquet row-set, in one transaction; return the row count.

        A cell whose run wrote fairness-probe curves (``run/probe.csv``, ``fit`` with
        ``probe_every``) also fills the ``probe`` table: one row per step x metric x group, so
        the checkpoint step is one more axis of the study (``bench results --sql``)."""
        frame = pd.read_parquet(rows_path).reindex(columns=_RESULT_COLS)
        curves = self._probe_rows(cell, Path(rows_path).parent / "run")
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM results WHERE cell_id = ?", [cell.cell_id])
            self.con.register("incoming", frame)
            self.con.execute("INSERT INTO results SELECT * FROM incoming")
            self.con.unregister("incoming")
            self.con.execute("DELETE FROM probe WHERE cell_id = ?", [cell.cell_id])
            if curves is not None:
                self.con.register("incoming_probe", curves)
                self.con.execute("INSERT INTO probe SELECT * FROM incoming_probe")
                self.con.unregister("incoming_probe")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        return len(frame)

    @staticmethod
    def _probe_rows(cell, run_dir: Path) -> pd.DataFrame | None:
        files = sorted(run_dir.rglob("probe.csv")) if run_dir.is_dir() else []
        if not files:
            return None
        frame = pd.concat([pd.read_csv(f, keep_default_na=False, na_values=[""]) for f in files],
                          ignore_index=True).reindex(columns=_PROBE_COLS)
        for k, v in reversed(list(cell.axes.items())):
            frame.insert(0, k, v)
        frame.insert(0, "cell_id", cell.cell_id)
        frame["step"] = frame["step"].astype("int64")
        for c in ("metric", "attribute", "group", "reason"):
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
        return frame

    def query(self, sql: str) -> pd.DataFrame:
        """Run a SQL query (tables ``cells``, ``results`` and ``probe``) and return a DataFrame."""
        duckdb = _duckdb()
        try:
            return self.con.execute(sql).df()
        except duckdb.Error as exc:
            raise FairfoundryError(f"SQL error: {exc}".splitlines()[0],
                                   hint="tables: cells, results, probe (see docs/studies.md)") from exc

    def results(self) -> pd.DataFrame:
        """Every result row, in a fixed order."""
        return self.query('SELECT * FROM results ORDER BY cell_id, label, attribute, "group", metric, kind')

    def cells(self) -> pd.DataFrame:
        return self.query("SELECT * EXCLUDE (config) FROM cells ORDER BY dataset, encoder, adaptation, mitigation, "
                          "label_fraction, seed")


def _t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    from ..metrics import t_interval

    return t_interval(values, confidence=confidence)


def leaderboard(results: pd.DataFrame, *, metric: str = "auc", attribute: str = "overall",
                group: str | None = "overall", kind: str = "group", confidence: float = 0.95) -> pd.DataFrame:
    """Mean of one metric over seeds per configuration, with a t-interval over seeds.

    With one seed the interval is the cell's own bootstrap interval. Rows: dataset, encoder,
    adaptation, mitigation, label_fraction, n_seeds, estimate, ci_low, ci_high.
    """
    sel = results[(results["metric"] == metric) & (results["kind"] == kind) & (results["attribute"] == attribute)]
    if group is not None:
        sel = sel[sel["group"].astype(str) == group]
    keys = [a for a in _AXES if a != "seed"]
    rows = []
    for key, g in sel.groupby(keys, sort=True, dropna=False):
        est = g["estimate"].to_numpy(dtype=float)
        if g["seed"].nunique() >= 2:
            m, lo, hi = _t_interval(est, confidence)
            how = "t over seeds"
        else:
            m, lo, hi = float(est[0]), float(g["ci_low"].iloc[0]), float(g["ci_high"].iloc[0])
            how = "bootstrap (one seed)"
        rows.append({**dict(zip(keys, key, strict=True)), "n_seeds": int(g["seed"].nunique()), "estimate": m, "ci_low": lo,
                     "ci_high": hi, "interval": how})
    return pd.DataFrame(rows, columns=[*keys, "n_seeds", "estimate", "ci_low", "ci_high", "interval"])


def paired_differences(results: pd.DataFrame, *, metric: str = "auc", attribute: str = "overall",
                       group: str | None = "overall", kind: str = "group", by: str = "mitigation",
                       reference: str | float = "erm", confidence: float = 0.95) -> pd.DataFrame:
    r"""Each value of axis ``by`` against ``reference``, paired over seeds, with a t-interval.

    For a value :math:`m` of ``by`` (a mitigation, an adaptation, a label fraction, ...) and seed
    :math:`s`, with every other axis fixed, :math:`d_s = x_{m,s} - x_{\mathrm{ref},s}`; the row gives
    :math:`\bar d` and its t-interval over seeds (NaN with fewer than two paired seeds) and
    whether it excludes zero. Pairing by seed removes the seed-to-seed variation the two
    configurations share (same split, same initialisation seed).
    """
    sel = results[(results["metric"] == metric) & (results["kind"] == kind) & (results["attribute"] == attribute)]
    if group is not None:
        sel = sel[sel["group"].astype(str) == group]
    keys = [a for a in _AXES if a not in ("seed", by)]
    rows = []
    for key, g in sel.groupby(keys, sort=True, dropna=False):
        wide = g.pivot_table(index="seed", columns=by, values="estimate", aggfunc="first")
        if reference not in wide.columns:
            continue
        for m in wide.columns:
            if m == reference:
                continue
            d = (wide[m] - wide[reference]).dropna().to_numpy(dtype=float)
            mean, lo, hi = _t_interval(d, confidence)
            rows.append({**dict(zip(keys, key, strict=True)), by: m, "reference": reference, "n_pairs": len(d),
                         "difference": mean, "ci_low": lo, "ci_high": hi,
                         "differs": bool(np.isfinite(lo) and (lo > 0 or hi < 0))})
    return pd.DataFrame(rows, columns=[*keys, by, "reference", "n_pairs", "difference", "ci_low", "ci_high",
                                       "differs"])


def simultaneous(d: pd.DataFrame, family_size: int, *, confidence: float = 0.95) -> pd.DataFrame:
    r"""Widen the paired t-intervals of ``d`` (from :func:`paired_differences`) to hold jointly over a family.

    A report that states a verdict for each of :math:`m` comparisons keeps its chance of any false
    "differs" at :math:`1 - c` only if each interval has level :math:`1 - (1 - c)/m` (Bonferroni):
    the half-width of each t-interval is multiplied by
    :math:`t_{1-(1-c)/(2m),\,n-1} / t_{1-(1-c)/2,\,n-1}`. Adds ``sim_ci_low``, ``sim_ci_high`` and
    ``family_size``; ``differs`` is then whether the simultaneous interval excludes 0 (the
    descriptive ``ci_low`` / ``ci_high`` stay per-comparison). The intervals of ``d`` must have
    been computed at level ``confidence`` (``paired_differences(..., confidence=...)``). The null
    simulation ``benchmarks/sim_study_verdicts.py`` measures the family-wise rate (5.0-5.3 %,
    BENCHMARKS.md).
    """
    from scipy import stats

    d = d.copy()
    m = max(int(family_size), 1)
    alpha = 1 - confidence
    n = d["n_pairs"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(n > 1, n - 1, np.nan)
        scale = stats.t.ppf(1 - alpha / (2 * m), df) / stats.t.ppf(1 - alpha / 2, df)
    half = (d["ci_high"].to_numpy(dtype=float) - d["ci_low"].to_numpy(dtype=float)) / 2 * scale
    mean = d["difference"].to_numpy(dtype=float)
    d["sim_ci_low"], d["sim_ci_high"], d["family_size"] = mean - half, mean + half, m
    d["differs"] = np.isfinite(mean - half) & ((mean - half > 0) | (mean + half < 0))
    return d


def spread_over_seeds(results: pd.DataFrame, *, metric: str, attribute: str, group: str | None = None,
                      kind: str = "summary", confidence: float = 0.95) -> pd.DataFrame:
    r"""Standard deviation of a metric over seeds per configuration, with its chi-square interval.

    .. math:: \left[\sqrt{\frac{(n-1)s^2}{\chi^2_{1-\alpha/2,\,n-1}}},\;
              \sqrt{\frac{(n-1)s^2}{\chi^2_{\alpha/2,\,n-1}}}\right]

    (exact for normally distributed values; the label-scarcity study's "variance of fairness gaps
    as the volume of labelled data is reduced", review section 4.2).
    """
    from scipy.stats import chi2

    sel = results[(results["metric"] == metric) & (results["kind"] == kind) & (results["attribute"] == attribute)]
    if group is not None:
        sel = sel[sel["group"].astype(str) == group]
    keys = [a for a in _AXES if a != "seed"]
    rows = []
    a = 1 - confidence
    for key, g in sel.groupby(keys, sort=True, dropna=False):
        v = g["estimate"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        n = len(v)
        sd = float(v.std(ddof=1)) if n >= 2 else np.nan
        lo = float(np.sqrt((n - 1) * sd ** 2 / chi2.ppf(1 - a / 2, n - 1))) if n >= 2 else np.nan
        hi = float(np.sqrt((n - 1) * sd ** 2 / chi2.ppf(a / 2, n - 1))) if n >= 2 else np.nan
        rows.append({**dict(zip(keys, key, strict=True)), "n_seeds": n, "sd": sd, "sd_ci_low": lo, "sd_ci_high": hi})
    return pd.DataFrame(rows, columns=[*keys, "n_seeds", "sd", "sd_ci_low", "sd_ci_high"])
