"""Named studies: the review's open questions as runnable grids (arXiv 2502.16841, sections 4.1-4.2).

Each study prepares its inputs (manifests with patient-level splits, cached embeddings), runs a
:func:`~fairfoundry.bench.run_grid` grid whose cells are ``fairfoundry fit`` runs, and writes one
report from the results store. Sentences in the reports follow the evidence: a difference is
stated only when its interval over seeds excludes zero; otherwise the report says that no
difference is shown at this size.

- ``label-scarcity`` (Q3, section 4.2): linear probe trained on 1, 5, 10, 25, 50 and 100 % of the
  training patients; AUC, fairness gaps and the spread of the gaps over seeds, per fraction.
- ``peft-vs-full`` (Q1, section 4.1.2): linear probe vs LoRA (several ranks) vs a head trained
  through the frozen encoder vs partial (last blocks) vs full fine-tuning of the same encoder.
- ``cross-site`` (the review's geographic generalisation check): HAM10000's two countries
  (``rosendahl``: Queensland, Australia; ``vidir_*`` / ``vienna_dias``: Vienna, Austria); train on
  one, test on the other and on itself.
- ``zoo-benchmark``: every encoder given (offline: the bundled ``fairfoundry-tiny`` and a
  random-init baseline) x the datasets, linear probe, one fairness table and the Friedman /
  Nemenyi ranking where there are enough datasets.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean

__all__ = ["STUDIES", "Study", "register_study", "run_study", "StudyOptions", "ham10000_sites"]

log = logging.getLogger(__name__)

#: HAM10000 ``dataset`` column -> ISO 3166 alpha-3 country of the collecting site (Tschandl et al. 2018)
_HAM_COUNTRY = {"rosendahl": "AUS", "vidir_modern": "AUT", "vidir_molemax": "AUT", "vienna_dias": "AUT"}
_MALIGNANT = ("mel", "bcc", "akiec")
#: a per-group estimate needs this many of its own events before a study's text reads it
MIN_EVENTS = 10


@dataclass(frozen=True)
class StudyOptions:
    """Options shared by the studies (validated once by :func:`run_study`)."""

    manifest: str | None = None
    label: str | None = None
    sensitive: tuple[str, ...] = ("sex", "age")
    encoders: tuple[str, ...] = ("fairfoundry-tiny",)
    encoder_weights: str | None = None
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    bootstrap: int = 200
    epochs: int = 30
    fine_tune_epochs: int = 3
    lora_ranks: tuple[int, ...] = (4, 16)
    partial_blocks: int = 2
    fractions: tuple[float, ...] = (0.01, 0.05, 0.10, 0.25, 0.50, 1.0)
    device: str = "cpu"
    executor: str = "local"
    num_cpus: int | None = None


@dataclass
class Study:
    """A named study: ``build`` prepares inputs and returns the grid; ``analyse`` writes the report's parts."""

    name: str
    question: str
    build: Callable[[Path, StudyOptions], dict]
    analyse: Callable[[pd.DataFrame, pd.DataFrame, dict, StudyOptions, Path], dict]
    doc: str = ""
    meta: dict = field(default_factory=dict)


STUDIES: dict[str, Study] = {}


def register_study(name: str, *, question: str):
    """Register a study from a class with ``build`` and ``analyse`` static methods."""

    def deco(cls):
        if name in STUDIES:
            raise ValueError(f"study {name!r} registered twice")
        STUDIES[name] = Study(name=name, question=question, build=cls.build, analyse=cls.analyse,
                              doc=(cls.__doc__ or "").strip())
        return cls

    return deco


# ----------------------------------------------------------------------------- inputs

def _nih_manifest(out: Path, *, seed: int) -> tuple[Path, str]:
    """The bundled NIH X-rays with a seeded patient-level 60/20/20 split and absolute paths."""
    from .._io import write_table_atomic
    from ..data import patient_split, read_manifest
    from ..datasets import nih_images

    src = Path(nih_images())
    m = read_manifest(src, required=("sample_id", "path", "No_Finding", "sex", "age")).copy()
    m["path"] = [str(p) if Path(p).is_absolute() else str((src.parent / p).resolve()) for p in m["path"]]
    m["split"] = patient_split(m, ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=seed,
                               stratify=["No_Finding", "sex"]).to_numpy()
    m["country"] = "USA"
    path = out / "nih_manifest.csv"
    write_table_atomic(path, m)
    return path, "No_Finding"


def ham10000_sites(manifest: str | os.PathLike) -> pd.DataFrame:
    """A HAM10000 manifest with ``country`` (ISO alpha-3) from its ``dataset``/``site`` column and a
    0/1 ``malignant`` label (mel, bcc, akiec) from ``dx``; rows of unknown sites (``external``) are
    dropped. Accepts a fairfoundry manifest or HAM10000's own metadata layout (``image_id``,
    ``lesion_id``, ``file``), e.g. ``tests/data/ham10000_images_224/metadata.csv``."""
    from ..data import read_manifest

    m = read_manifest(manifest, required=()).copy()
    if "sample_id" not in m.columns and "image_id" in m.columns:
        m["sample_id"] = m["image_id"].astype(str)
    if "path" not in m.columns and "file" in m.columns:
        m["path"] = m["file"].astype(str)
    if "patient_id" not in m.columns and "lesion_id" in m.columns:
        m["patient_id"] = m["lesion_id"].astype(str)  # HAM10000 ids are lesions, the closest it records
    for col in ("sample_id", "path"):
        if col not in m.columns:
            raise FairfoundryError(f"manifest {manifest} has no {col!r} column")
    site_col = "dataset" if "dataset" in m.columns else ("site" if "site" in m.columns else None)
    if site_col is None:
        raise FairfoundryError(f"manifest {manifest} has no 'dataset' (or 'site') column: the cross-site study "
                               "needs HAM10000's collecting site")
    base = Path(manifest).parent
    m["path"] = [str(p) if Path(p).is_absolute() else str((base / p).resolve()) for p in m["path"].astype(str)]
    m["country"] = m[site_col].map(_HAM_COUNTRY)
    m = m[m["country"].notna()].copy()
    if "malignant" not in m.columns:
        if "dx" not in m.columns:
            raise FairfoundryError(f"manifest {manifest} has neither 'malignant' nor 'dx'")
        m["malignant"] = m["dx"].isin(_MALIGNANT).astype(int)
    if "patient_id" not in m.columns:
        m["patient_id"] = m["lesion_id"] if "lesion_id" in m.columns else m["sample_id"]
    if m["country"].nunique() < 2:
        raise FairfoundryError(f"manifest {manifest} holds images of one country only: {sorted(m['country'].unique())}")
    return m


def _drop_missing(m: pd.DataFrame, opts: StudyOptions, out: Path, name: str) -> pd.DataFrame:
    """Leave out images without a recorded protected attribute, and record how many (the report says it).

    An ``unknown`` group can be absent from a test split while present in training, and then cannot
    be evaluated or compared; the studies compare recorded groups only.
    """
    from .._io import write_json_atomic

    missing = m[list(opts.sensitive)].isna().any(axis=1)
    write_json_atomic(out / f"excluded-{name}.json", {"dataset": name, "rows": int(missing.sum()),
                                                      "attributes": list(opts.sensitive)})
    return m[~missing].copy()


def _excluded_notes(inputs: Path) -> list[str]:
    notes = []
    for f in sorted(inputs.rglob("excluded-*.json")):
        e = json.loads(f.read_text(encoding="utf-8"))
        if e["rows"]:
            notes.append(f"{e['dataset']}: {e['rows']} images without a recorded {' or '.join(e['attributes'])} were "
                         "left out (an unknown group absent from a test split cannot be evaluated or compared).")
    return notes


def _embed(manifest: Path, encoder: str, opts: StudyOptions, out: Path) -> str:
    from ..models import extract_embeddings

    target = out / f"embeddings-{encoder.replace(':', '_').replace('/', '_')}"
    weights = opts.encoder_weights if encoder == opts.encoders[0] else None
    if encoder.endswith("@random"):
        encoder, weights = encoder.removesuffix("@random"), "random"
    extract_embeddings(manifest, encoder, out=target, weights=weights, device=opts.device, overwrite=True)
    return str(target)


def _dataset(name: str, manifest: Path, label: str, opts: StudyOptions, embeddings: dict[str, str]) -> dict:
    return {"name": name, "manifest": str(manifest), "label": label, "sensitive": list(opts.sensitive),
            "bins": {"age": [40, 60, 80]} if "age" in opts.sensitive else {}, "embeddings": embeddings}


def _embedded_dataset(out: Path, opts: StudyOptions) -> dict:
    """The study's one dataset, embedded with its first encoder (cached)."""
    man, label = _manifest_and_label(out, opts)
    return _dataset("data", man, label, opts, {opts.encoders[0]: _embed(man, opts.encoders[0], opts, out)})


def _grid(name: str, datasets: list[dict], opts: StudyOptions, **axes) -> dict:
    return {"name": name, "datasets": datasets, "encoders": list(axes.pop("encoders", opts.encoders)),
            "seeds": list(opts.seeds), "fit": {"epochs": opts.epochs, "bootstrap": opts.bootstrap,
                                               "device": opts.device}, **axes}


# ----------------------------------------------------------------------------- analysis helpers

def _fmt(est, lo, hi) -> str:
    if not np.isfinite(est):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{est:.3f}"
    return f"{est:.3f} [{lo:.3f}, {hi:.3f}]"


def _difference_sentence(row, what: str, *, unit: str = "") -> str:
    if row["n_pairs"] < 2:
        return f"{what}: too few paired seeds to judge (n = {row['n_pairs']})."
    d = _fmt(row["difference"], row["ci_low"], row["ci_high"])
    m = int(row.get("family_size", 1) or 1)
    if m > 1:
        sim = _fmt(row["difference"], row["sim_ci_low"], row["sim_ci_high"]).split(" ", 1)[-1]
        how = (f"95 % t-interval over {row['n_pairs']} paired seeds; simultaneous over the {m} comparisons of this "
               f"report (Bonferroni): {sim}")
        if row["differs"]:
            return f"{what}: differs, {d}{unit} ({how})."
        return f"{what}: no difference shown ({d}{unit}; {how}, which includes 0)."
    if row["differs"]:
        return f"{what}: differs, {d}{unit} (95 % t-interval over {row['n_pairs']} paired seeds)."
    return (f"{what}: no difference shown at 95 % ({d}{unit}, {row['n_pairs']} paired seeds; the interval "
            "includes 0).")


def _events(results: pd.DataFrame) -> pd.DataFrame:
    """Smallest number of test positives of any group, per cell and attribute."""
    pos = results[(results["metric"] == "positives") & (results["kind"] == "group")
                  & (results["attribute"] != "overall")]
    return pos.groupby(["cell_id", "attribute"])["estimate"].min().rename("min_positives").reset_index()


def _judgeable(results: pd.DataFrame, attribute: str) -> bool:
    """Whether every group of ``attribute`` has at least :data:`MIN_EVENTS` test positives in every cell."""
    if attribute == "overall":
        return True
    ev = _events(results)
    sub = ev[ev["attribute"] == attribute]
    return bool(len(sub)) and bool((sub["min_positives"] >= MIN_EVENTS).all())


def _few_events_note(results: pd.DataFrame, attrs: Sequence[str]) -> list[str]:
    ev = _events(results)
    notes = []
    for a in attrs:
        sub = ev[ev["attribute"] == a]
        if len(sub) and (sub["min_positives"] < MIN_EVENTS).any():
            notes.append(f"For {a}, some group has fewer than {MIN_EVENTS} positives in the test split of "
                         f"{int((sub['min_positives'] < MIN_EVENTS).sum())} of {len(sub)} cells: per-group AUCs "
                         f"and gaps by {a} there are too few to judge, whatever their point value.")
    return notes


def _chance_notes(auc: pd.DataFrame, axis: str) -> list[str]:
    """Say which configurations are at chance (their AUC interval includes 0.5)."""
    def names(rows):
        return ", ".join(f"{v:.0%}" if isinstance(v, float) else str(v) for v in rows[axis])

    notes = []
    at = auc[(auc["ci_low"] <= 0.5) & (0.5 <= auc["ci_high"])]
    if len(at):
        notes.append(f"At chance (test AUC interval includes 0.5) for {axis.replace('_', ' ')} {names(at)}: fairness "
                     "gaps of a model at chance say nothing about the model.")
    below = auc[auc["ci_high"] < 0.5]
    if len(below):
        notes.append(f"Below chance (the whole AUC interval under 0.5) for {axis.replace('_', ' ')} {names(below)}: "
                     "the model ranks these patients the wrong way round, i.e. what it learned separates the "
                     "classes in the opposite direction here. Its per-group gaps are not a fairness finding.")
    return notes


def _figure(plot: Callable) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot(plt)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _metric_tables(results: pd.DataFrame, attrs: Sequence[str]) -> dict[str, pd.DataFrame]:
    from ._store import leaderboard

    tables = {"auc": leaderboard(results, metric="auc")}
    for a in attrs:
        tables[f"auc_gap_{a}"] = leaderboard(results, metric="auc_gap", attribute=a, group=None, kind="summary")
        tables[f"auc_worst_group_{a}"] = leaderboard(results, metric="auc_worst_group", attribute=a, group=None,
                                                     kind="summary")
    return tables


def _errorbar(plt, table: pd.DataFrame, x: str, ylabel: str, *, logx: bool = False, series: str | None = None):
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    groups = [(None, table)] if series is None else list(table.groupby(series))
    for name, t in groups:
        t = t.sort_values(x)
        xs = t[x].to_numpy()
        xs_plot = xs if np.issubdtype(np.asarray(xs).dtype, np.number) else np.arange(len(xs))
        err = np.vstack([t["estimate"] - t["ci_low"], t["ci_high"] - t["estimate"]])
        ax.errorbar(xs_plot, t["estimate"], yerr=np.nan_to_num(err), fmt="o-", capsize=3,
                    label=None if name is None else str(name))
        if not np.issubdtype(np.asarray(xs).dtype, np.number):
            ax.set_xticks(xs_plot, [str(v) for v in xs], rotation=20)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel)
    if series is not None:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig


# ----------------------------------------------------------------------------- the studies

@register_study("label-scarcity", question="Q3 (review 4.2): how does the scarcity of labelled data affect "
                                           "fairness metrics, and how variable are the gaps?")
class _LabelScarcity:
    """Linear probe on 1-100 % of the training patients (validation and test untouched), 5 seeds."""

    @staticmethod
    def build(out: Path, opts: StudyOptions) -> dict:
        return _grid("label-scarcity", [_embedded_dataset(out, opts)], opts, encoders=opts.encoders[:1],
                     label_fractions=list(opts.fractions))

    @staticmethod
    def analyse(results, cells, grid, opts, inputs) -> dict:
        from ._store import spread_over_seeds

        tables = _metric_tables(results, opts.sensitive)
        figures, text = {}, []
        figures["AUC vs fraction of labelled training patients"] = _figure(
            lambda plt: _errorbar(plt, tables["auc"], "label_fraction", "test AUC (95 % CI over seeds)", logx=True))
        for a in opts.sensitive:
            spread = spread_over_seeds(results, metric="auc_gap", attribute=a)
            tables[f"auc_gap_spread_{a}"] = spread
            figures[f"AUC gap by {a} vs fraction"] = _figure(
                lambda plt, a=a: _errorbar(plt, tables[f"auc_gap_{a}"], "label_fraction",
                                           f"AUC gap by {a} (95 % CI over seeds)", logx=True))
            full, small = spread[spread["label_fraction"] == 1.0], spread[spread["label_fraction"] < 1.0]
            if len(full) and len(small) and np.isfinite(full["sd"].iloc[0]):
                f = full.iloc[0]
                for _, r in small.iterrows():
                    if not np.isfinite(r["sd"]):
                        text.append(f"At {r['label_fraction']:.0%} of the labels: too few fitted seeds to measure "
                                    f"the spread of the {a} gap.")
                        continue
                    separated = r["sd_ci_low"] > f["sd_ci_high"] or r["sd_ci_high"] < f["sd_ci_low"]
                    verdict = ("larger than" if r["sd"] > f["sd"] else "smaller than") if separated else \
                        "not distinguishable from"
                    text.append(f"Spread (SD over seeds) of the AUC gap by {a} at {r['label_fraction']:.0%} of the "
                                f"labels: {_fmt(r['sd'], r['sd_ci_low'], r['sd_ci_high'])}, {verdict} at 100 % "
                                f"({_fmt(f['sd'], f['sd_ci_low'], f['sd_ci_high'])}).")
        text.append("At 100 % every seed trains on the same patients (only the initialisation differs); below "
                    "100 % the seed also draws which patients are labelled, which is the variation the question "
                    "is about.")
        text += _chance_notes(tables["auc"], "label_fraction")
        failed = cells[cells["status"] == "failed"]
        if len(failed):
            by = failed.groupby("label_fraction").size()
            text.append("Cells that could not be fitted (e.g. a training split with one class only): "
                        + ", ".join(f"{n} at {fr:.0%}" for fr, n in by.items()) + ".")
        text += _few_events_note(results, opts.sensitive) + _excluded_notes(inputs)
        return {"tables": tables, "figures": figures, "text": text}


@register_study("peft-vs-full", question="Q1 (review 4.1.2): do parameter-efficient methods such as LoRA change "
                                         "fairness compared with full fine-tuning?")
class _PeftVsFull:
    """Linear probe vs LoRA ranks vs a head trained through the frozen encoder vs partial (the last
    blocks) vs full fine-tuning."""

    @staticmethod
    def build(out: Path, opts: StudyOptions) -> dict:
        adaptations = [{"kind": "probe"}, *({"kind": "lora", "lora_r": r} for r in opts.lora_ranks),
                       {"kind": "frozen"}, {"kind": "partial", "partial_blocks": opts.partial_blocks},
                       {"kind": "full"}]
        grid = _grid("peft-vs-full", [_embedded_dataset(out, opts)], opts, encoders=opts.encoders[:1],
                     adaptations=adaptations)
        grid["fit"]["epochs"] = opts.fine_tune_epochs  # one setting for every adaptation: the comparison is fair
        if opts.encoder_weights:
            grid["fit"]["encoder_weights"] = opts.encoder_weights
        return grid

    @staticmethod
    def analyse(results, cells, grid, opts, inputs) -> dict:
        from ._store import paired_differences, simultaneous

        tables = _metric_tables(results, opts.sensitive)
        text, figures = [], {}
        ref = "linear-probe"
        diffs = []
        for metric, attr, kind, group in [("auc", "overall", "group", "overall"),
                                          *(("auc_gap", a, "summary", None) for a in opts.sensitive)]:
            d = paired_differences(results, metric=metric, attribute=attr, group=group, kind=kind, by="adaptation",
                                   reference=ref)
            diffs.append((metric, attr, d, attr == "overall" or _judgeable(results, attr)))
        family = sum(len(d) for *_, d, judged in diffs if judged)  # every verdict the report states
        for metric, attr, d, judged in diffs:
            d = tables[f"diff_{metric}_{attr}"] = simultaneous(d, family)
            for _, r in d.iterrows():
                what = f"{r['adaptation']} vs {ref}, {metric if attr == 'overall' else f'{metric} by {attr}'}"
                if not judged:
                    text.append(f"{what}: too few to judge (a group of {attr} has fewer than {MIN_EVENTS} test "
                                "positives); the paired difference is in the tables, not a finding.")
                    continue
                text.append(_difference_sentence(r, what))
        text += _chance_notes(tables["auc"], "adaptation")
        for a in opts.sensitive:
            figures[f"AUC gap by {a} per adaptation"] = _figure(
                lambda plt, a=a: _errorbar(plt, tables[f"auc_gap_{a}"], "adaptation", f"AUC gap by {a} (95 % CI)"))
        text += _few_events_note(results, opts.sensitive) + _excluded_notes(inputs)
        return {"tables": tables, "figures": figures, "text": text}


@register_study("cross-site", question="Geographic generalisation (review 'next checks'): train on data from one "
                                       "region, test on another")
class _CrossSite:
    """HAM10000: train on Queensland (AUS) or Vienna (AUT), test on the other country and on held-out
    patients of the same one; per-group gaps by sex and age with CIs."""

    @staticmethod
    def build(out: Path, opts: StudyOptions) -> dict:
        from .._io import write_table_atomic
        from ..data import patient_split

        if opts.manifest is None:
            raise FairfoundryError("the cross-site study needs --manifest: a HAM10000 manifest with its 'dataset' "
                                   "column (HAM10000 is CC BY-NC and is not bundled with the package)",
                                   hint="see docs/studies.md for the manifest of the 486 HAM10000 test images")
        m = ham10000_sites(opts.manifest)
        label = opts.label or "malignant"
        m = _drop_missing(m, opts, out, "HAM10000")
        full = out / "ham_all.csv"
        write_table_atomic(full, m)
        emb = {opts.encoders[0]: _embed(full, opts.encoders[0], opts, out)}
        datasets = []
        for train_c in sorted(m["country"].unique()):
            own = m[m["country"] == train_c].copy()
            own["split"] = patient_split(own, ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=0,
                                         stratify=[label]).to_numpy()
            for test_c in sorted(m["country"].unique()):
                if test_c == train_c:
                    frame = own
                else:
                    other = m[m["country"] == test_c].copy()
                    other["split"] = "test"
                    frame = pd.concat([own[own["split"] != "test"], other], ignore_index=True)
                path = out / f"train_{train_c}_test_{test_c}.csv"
                write_table_atomic(path, frame)
                datasets.append(_dataset(f"{train_c}->{test_c}", path, label, opts, emb))
        return _grid("cross-site", datasets, opts, encoders=opts.encoders[:1])

    @staticmethod
    def analyse(results, cells, grid, opts, inputs) -> dict:
        tables = _metric_tables(results, opts.sensitive)
        text, figures = [], {}
        auc = results[(results["metric"] == "auc") & (results["attribute"] == "overall") & (results["kind"] == "group")]
        pairs = {}
        for ds in auc["dataset"].unique():
            tr, te = ds.split("->")
            pairs.setdefault(tr, {})[te] = auc[auc["dataset"] == ds].set_index("seed")["estimate"]
        from ._store import _t_interval, simultaneous

        rows = []
        for tr, by_test in pairs.items():
            for te, series in by_test.items():
                if te == tr or tr not in by_test:
                    continue
                d = (series - by_test[tr]).dropna().to_numpy(dtype=float)
                mean, lo, hi = _t_interval(d)
                differs = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
                rows.append({"train": tr, "test": te, "n_pairs": len(d), "difference": mean, "ci_low": lo,
                             "ci_high": hi, "differs": differs})
        gaps = tables["generalisation_gap"] = simultaneous(pd.DataFrame(rows), len(rows)) if rows else pd.DataFrame()
        for _, r in gaps.iterrows():
            text.append(_difference_sentence(r, f"trained in {r['train']}: AUC in {r['test']} minus AUC on held-out "
                                                f"{r['train']} patients"))
        figures["AUC per train -> test country"] = _figure(
            lambda plt: _errorbar(plt, tables["auc"], "dataset", "test AUC (95 % CI over seeds)"))
        text += _chance_notes(tables["auc"], "dataset")
        text.append("The two countries differ in more than geography: case mix (Queensland's images are mostly "
                    "malignant lesions of older patients) and acquisition; a drop is a shift, not its cause.")
        text += _few_events_note(results, opts.sensitive) + _excluded_notes(inputs)
        return {"tables": tables, "figures": figures, "text": text}


@register_study("zoo-benchmark", question="Baseline fairness of several foundation models (review 'next checks')")
class _ZooBenchmark:
    """Every encoder given x the datasets (bundled NIH X-rays, plus --manifest), linear probe, 5 seeds."""

    @staticmethod
    def build(out: Path, opts: StudyOptions) -> dict:
        nih, nih_label = _nih_manifest(out, seed=0)
        sets = [("nih-xray", nih, nih_label)]
        if opts.manifest is not None:
            man, label = _manifest_and_label(out, opts)
            head = pd.read_csv(man, nrows=1)
            sets.append(("ham10000" if "dx" in head.columns and "dataset" in head.columns else
                         Path(opts.manifest).stem, man, label))
        datasets = []
        for name, man, label in sets:
            emb = {enc: _embed(man, enc, opts, out / name) for enc in opts.encoders}
            datasets.append(_dataset(name, man, label, opts, emb))
        return _grid("zoo-benchmark", datasets, opts)

    @staticmethod
    def analyse(results, cells, grid, opts, inputs) -> dict:
        from ._rank import friedman_test

        tables = _metric_tables(results, opts.sensitive)
        text, figures = [], {}
        auc = tables["auc"]
        figures["AUC per encoder and dataset"] = _figure(
            lambda plt: _errorbar(plt, auc, "encoder", "test AUC (95 % CI over seeds)", series="dataset"))
        wide = auc.pivot_table(index="dataset", columns="encoder", values="estimate")
        if wide.shape[0] >= 3 and wide.shape[1] >= 2 and not wide.isna().any().any():
            r = friedman_test(wide)
            tables["ranks"] = r.to_frame()
            text.append(r.sentence())
            if wide.shape[0] < 5:
                text.append(f"With {wide.shape[0]} datasets the Friedman test has little power: a ranking is not "
                            "shown to hold beyond these datasets.")
        else:
            text.append(f"{wide.shape[0]} dataset(s) and {wide.shape[1]} encoder(s): too few datasets to rank the "
                        "encoders across datasets (the Friedman test needs at least 3); compare the intervals per "
                        "dataset.")
        from ._store import paired_differences, simultaneous

        per_ds = {}
        for ds in auc["dataset"].unique():
            sub = results[results["dataset"] == ds]
            encs = sorted(sub["encoder"].unique())
            if len(encs) >= 2:
                per_ds[ds] = (encs[0], paired_differences(sub, metric="auc", by="encoder", reference=encs[0]))
        family = sum(len(d) for _, d in per_ds.values())
        for ds, (ref, d) in per_ds.items():
            d = tables[f"diff_auc_{ds}"] = simultaneous(d, family)
            for _, row in d.iterrows():
                text.append(_difference_sentence(row, f"{ds}: AUC of {row['encoder']} minus {ref}"))
        for enc in auc["encoder"].unique():
            for _, r in auc[auc["encoder"] == enc].iterrows():
                if r["ci_low"] <= 0.5 <= r["ci_high"]:
                    text.append(f"{enc} on {r['dataset']}: AUC {_fmt(r['estimate'], r['ci_low'], r['ci_high'])} "
                                "includes 0.5: at chance on this data.")
        text += _few_events_note(results, opts.sensitive) + _excluded_notes(inputs)
        return {"tables": tables, "figures": figures, "text": text}


def _manifest_and_label(out: Path, opts: StudyOptions) -> tuple[Path, str]:
    """The study's manifest: the bundled NIH X-rays (label No_Finding) or the user's, with a patient split."""
    if opts.manifest is None:
        return _nih_manifest(out, seed=0)
    from .._io import write_table_atomic
    from ..data import patient_split, read_manifest

    head = read_manifest(opts.manifest, required=())
    if {"image_id", "dx", "dataset"} <= set(head.columns) and "sample_id" not in head.columns:
        m = ham10000_sites(opts.manifest)  # HAM10000's own metadata layout
        label = opts.label or "malignant"
    else:
        if not opts.label:
            raise FairfoundryError("--label is required with --manifest")
        label = opts.label
        m = read_manifest(opts.manifest, required=("sample_id", "path", label, *opts.sensitive)).copy()
        base = Path(opts.manifest).parent
        m["path"] = [str(p) if Path(p).is_absolute() else str((base / p).resolve()) for p in m["path"].astype(str)]
    missing = [c for c in (label, *opts.sensitive) if c not in m.columns]
    if missing:
        raise FairfoundryError(f"manifest {opts.manifest} has no column(s) {', '.join(missing)}")
    m = _drop_missing(m, opts, out, "ham10000" if "dx" in m.columns and "dataset" in m.columns
                      else Path(opts.manifest).stem)
    if "patient_id" not in m.columns:
        m["patient_id"] = m["sample_id"]
    if "split" not in m.columns:
        m["split"] = patient_split(m, ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=0,
                                   stratify=[label]).to_numpy()
    path = out / "manifest.csv"
    write_table_atomic(path, m)
    return path, label


# ----------------------------------------------------------------------------- running and reporting

def _render(study: Study, parts: dict, grid_summary: dict, opts: StudyOptions) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.bench", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    tables = {name: t.to_html(index=False, float_format=lambda v: f"{v:,.4f}", na_rep="n/a", border=0,
                              classes="tbl") for name, t in parts["tables"].items()}
    return env.get_template("study.html.j2").render(
        study=study, text=parts["text"], figures=parts["figures"], tables=tables, summary=grid_summary,
        options=opts, min_events=MIN_EVENTS)


def run_study(name: str, out: str | os.PathLike, *, options: StudyOptions | None = None, resume: bool = False,
              overwrite: bool = False, progress: Callable[[int], None] | None = None) -> Path:
    """Run the named study into ``out``: ``inputs/``, ``grid/`` (cells, results.duckdb), ``tables/*.csv``,
    ``report.html`` and ``study.json``.

    Parameters
    ----------
    name : a study of :data:`STUDIES` (``label-scarcity``, ``peft-vs-full``, ``cross-site``, ``zoo-benchmark``)
    out : output directory (new or empty; ``resume`` continues a study's grid, ``overwrite`` starts over)
    options : :class:`StudyOptions`
    """
    import shutil

    from .._io import write_sidecar, write_table_atomic, write_text_atomic
    from ._grid import run_grid
    from ._store import ResultsStore

    if name not in STUDIES:
        raise FairfoundryError(f"unknown study {name!r}", hint=did_you_mean(name, STUDIES, what="studies"))
    study, opts = STUDIES[name], options or StudyOptions()
    if len(opts.seeds) < 2:
        raise FairfoundryError("a study needs at least two seeds (its intervals are over seeds)")
    if opts.partial_blocks < 1 or min(opts.lora_ranks, default=1) < 1 or opts.fine_tune_epochs < 1:
        raise FairfoundryError("--partial-blocks, --lora-rank and --fine-tune-epochs must be at least 1, got "
                               f"{opts.partial_blocks}, {list(opts.lora_ranks)} and {opts.fine_tune_epochs}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif not resume:
            raise FairfoundryError(f"{out} is not empty", hint="pass --resume to continue, or --overwrite")
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    grid = study.build(inputs, opts)
    summary = run_grid(grid, out / "grid", executor=opts.executor, resume=True, num_cpus=opts.num_cpus,
                       progress=progress)
    with ResultsStore(out / "grid" / "results.duckdb", read_only=True) as store:
        results, cells = store.results(), store.cells()
    if results.empty:
        raise FairfoundryError(f"every cell of the {name} study failed; the first error: "
                               f"{summary['failed'][0]['error'] if summary['failed'] else 'unknown'}")
    parts = study.analyse(results, cells, grid, opts, inputs)
    for tname, table in parts["tables"].items():
        write_table_atomic(out / "tables" / f"{tname}.csv", table, report=True)
    write_text_atomic(out / "report.html", _render(study, parts, summary, opts))
    write_sidecar(out / "study.json", kind=f"fairfoundry.study.{name}", config=json.loads(json.dumps(
        opts.__dict__, default=list)), seed=opts.seeds[0], grid=grid, cells=summary["cells"],
        failed=summary["failed"], findings=parts["text"])
    return out
