r"""A rule-based, offline labeler of the 14 CheXpert observations in radiology reports.

Each sentence is searched for *mentions* of the observations (phrase lists below); each mention
is then classified by NegBio-style cue rules, in NegBio's order (Peng et al., "NegBio: a
high-performance tool for negation and uncertainty detection in radiology reports", AMIA 2018):

1. *pre-negation uncertainty* ("cannot be excluded", "no new") -> uncertain;
2. *negation* ("no", "without", "negative for", "free of", "resolution of", "is normal",
   "within normal limits", "not seen", ...) -> negative;
3. *post-negation uncertainty* ("may", "possible", "suspicious for", "versus", ...; and a stable
   / unchanged heart or mediastinal contour) -> uncertain;
4. otherwise positive.

Mentions of one observation in a report are aggregated as the CheXpert labeler does (Irvin et
al., "CheXpert", AAAI 2019): negative + uncertain -> uncertain, negative + positive -> positive,
uncertain + positive -> positive; a positive or uncertain "heart failure" / "CHF" adds an
uncertain Cardiomegaly; "No Finding" is positive when nothing but Support Devices is positive or
uncertain and no other abnormality (a second phrase list) is asserted.

NegBio parses dependency graphs; these rules work on the words between a cue and a mention,
inside one clause, which is what lets them run anywhere with no model. The phrase lists were
written for fairfoundry, informed by the CheXpert labeler's mention / unmention phrase lists
(MIT licence, Copyright (c) 2018 Stanford Machine Learning Group,
https://github.com/stanfordmlgroup/chexpert-labeler) and by NegBio's negation and uncertainty
patterns (public domain, https://github.com/ncbi-nlp/NegBio); no code of either was copied.

Layer 1: pure Python / numpy / pandas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd

from .._errors import FairfoundryError

__all__ = ["OBSERVATIONS", "FINDINGS", "POSITIVE", "NEGATIVE", "UNCERTAIN", "label_report",
           "label_reports", "LEVELS"]

#: the 14 CheXpert observations, in the CheXpert labeler's column order
OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices")
#: the 13 findings (every observation except "No Finding"), scored for hallucinations
FINDINGS: tuple[str, ...] = OBSERVATIONS[1:]

#: CheXpert's numeric codes (absent is NaN)
POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
#: code -> name
LEVELS = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain"}

# ---- mention phrases (regular expressions on lower-cased text; \b = word boundary) ----------
# Written for fairfoundry; the choice of phrases follows the CheXpert labeler's lists (MIT).
_MENTION: dict[str, list[str]] = {
    "Enlarged Cardiomediastinum": [
        r"\b(?:cardio)?mediastin(?:um|al)\b(?:\s+(?:silhouette|contours?|configuration|width))?",
        r"\bcontours?\b", r"\bpericardial silhouette\b", r"\bwidened mediastinum\b",
        r"\bhilar contours?\b"],
    "Cardiomegaly": [
        r"\bcardiomegaly\b", r"\bthe heart\b", r"\bheart size\b", r"\bcardiac (?:enlargement|size|"
        r"shadow|contour|silhouette)\b", r"\benlarged heart\b", r"\bheart is enlarged\b"],
    "Lung Lesion": [
        r"\bmass(?:es)?\b", r"\bnodul(?:e|es|ar (?:density|densities|opacity|opacities|"
        r"opacification))\b", r"\blump\b", r"\bcavitary lesions?\b", r"\bcarcinoma\b",
        r"\bneoplasms?\b", r"\btumou?rs?\b"],
    "Lung Opacity": [
        r"\bopaci\w*", r"\bdecreased translucency\b", r"\bincreased density\b",
        r"\bair[- ]?space disease\b", r"\binfiltrat\w*", r"\binterstitial (?:markings?|pattern|"
        r"lung)\b", r"\breticula(?:r pattern|r markings?|tion)\b", r"\bparenchymal scarring\b",
        r"\bperibronchial thickening\b", r"\bwall thickening\b", r"\bscar(?:ring)?\b"],
    "Edema": [
        r"\bedema\b", r"\bheart failure\b", r"\bchf\b", r"\bvascular congestion\b",
        r"\bpulmonary congestion\b", r"\bindistinctness\b", r"\bvascular prominence\b"],
    "Consolidation": [r"\bconsolidat\w*"],
    "Pneumonia": [r"\bpneumoni\w*", r"\binfection\b", r"\binfectious(?: process)?\b"],
    "Atelectasis": [r"\batelecta\w*", r"\bcollapse[ds]?\b"],
    "Pneumothorax": [r"\bpneumothora(?:x|ces)\b"],
    "Pleural Effusion": [r"\bpleural fluid\b", r"\beffusions?\b"],
    "Pleural Other": [
        r"\bpleural thickening\b", r"\bfibrosis\b", r"\bfibrothorax\b",
        r"\bpleural(?:[- ]parenchymal)? scar(?:ring)?\b", r"\bpleuro-?(?:parenchymal|pericardial)"
        r" scar(?:ring)?\b"],
    "Fracture": [r"\bfractur\w*"],
    "Support Devices": [
        r"\bpacer\b", r"\blines?\b", r"\bpicc\b", r"\btubes?\b", r"\bvalves?\b",
        r"\bcatheters?\b", r"\bpacemakers?\b", r"\bhardware\b", r"\barthroplast\w*",
        r"\bmarkers?\b", r"\bicd\b", r"\bdefibrillators?\b", r"\bdevices?\b", r"\bdrains?\b",
        r"\bplates?\b", r"\bscrews?\b", r"\bcannula\b", r"\bapparatus\b", r"\bcoils?\b",
        r"\bsupport\b", r"\bequipment\b", r"\bmediport\b", r"\bsternotomy wires?\b"],
}
# phrases that look like a mention but are not one (CheXpert's "unmention" lists)
_UNMENTION: dict[str, list[str]] = {
    "Lung Lesion": [r"\bcalcified nodul\w*", r"\bmassive\b"],
    "Lung Opacity": [r"\bpleural(?:[- ]parenchymal)? scar\w*"],
    "Pleural Effusion": [r"\bpericardial effusions?\b"],
    "Support Devices": [r"\bline of\b", r"\bskin ?folds?\b", r"\blines? of\b",
                        r"\bkerley b? ?lines?\b"],
}
# other abnormalities: a positive or uncertain one rules out "No Finding"
_OTHER_ABNORMAL = [
    r"\bemphysema\b", r"\bblunt\w*", r"\belevat\w*", r"\beventration\b", r"\bscoliosis\b",
    r"\bdegenera\w*", r"\bcalcifi\w*", r"\bhyperinflat\w*", r"\bhyperexpan\w*",
    r"\bbronchospasm\b", r"\basthma\b", r"\bhernia\b", r"\bcopd\b", r"\bplaques?\b",
    r"\bosteophyt\w*", r"\baortic disease\b", r"\bbronchiolitis\b", r"\bairways? disease\b",
    r"\bcephalization\b", r"\baspiration\b", r"\bbullae\b", r"\bcontusion\b",
    r"\batherosclero\w*", r"\bosteopenia\b", r"\bmetasta\w*", r"\bgranulomas?\b",
    r"\bpneumomediastinum\b", r"\bpneumoperitoneum\b", r"\bkyphosis\b", r"\bvolume loss\b",
    r"\bdeformit\w*", r"\bhemorrhage\b", r"\bhematoma\b", r"\bbronchitis\b",
    r"\btortuous\b", r"\bthickening\b"]

# ---- cues -----------------------------------------------------------------------------------
# NegBio-style cue words, written for fairfoundry (NegBio's patterns are public domain).
_PRE_NEG_UNCERTAIN = re.compile(
    r"\b(?:cannot|can ?not|could not|can't|not) (?:be )?(?:entirely |completely )?"
    r"(?:exclude[ds]?|rule[ds]? out)\b|\bno new\b|\bdifficult to exclude\b")
_POST_NEG_UNCERTAIN = re.compile(
    r"\b(?:cannot|can ?not|could not|can't|not) (?:be )?(?:entirely |completely )?"
    r"(?:exclude[ds]?|rule[ds]? out)\b|\bnot (?:be )?excluded\b")
_PRE_NEG = re.compile(
    r"\b(?:no|without|negative for|free of|clear of|absence of|absent|resolution of|resolved|"
    r"resolving|removal of|removed|history of|rule out|ruled out|to exclude|exclude|"
    r"excluding|never|nor|neither|not)\b")
_PRE_NORMAL = re.compile(r"\b(?:normal|unremarkable|stable normal)\b")
_POST_NEG = re.compile(
    r"^[\s\w]{0,40}?\b(?:(?:is|are|was|were|has|have|been)\s+)*(?:not (?:seen|identified|present|"
    r"evident|demonstrated|visualized|appreciated|noted|enlarged|detected|observed)|absent|"
    r"resolved|normal|unremarkable|within normal limits|(?:at )?(?:the )?upper limits? of "
    r"normal|no longer (?:seen|present|visualized|evident)|negative|gone)\b")
_UNCERTAIN = re.compile(
    r"\b(?:may|might|could|possible|possibly|probable|probably|presumably|presumed|likely|"
    r"questionable|question of|questioned|suspect|suspected|suspicious|suspicion|concern|"
    r"concerning|worrisome|suggest|suggests|suggested|suggesting|suggestive|suggestion|"
    r"differential|consider|considered|considerations?|favou?r|favou?red|versus|vs|and/or|"
    r"equivocal|indeterminate|cannot exclude|not excluded|borderline|either)\b|\?")
_POST_UNCERTAIN = re.compile(
    r"^\s*(?:(?:is|are|was|were)\s+)?(?:(?:possible|possibly|likely|probable|suspected|"
    r"questioned|questionable|a consideration|considered|not excluded|versus|vs|or)\b|\?)"
    r"|^[\s\w]{0,30}?\b(?:may be|might be|could be) (?:present|seen|developing|forming)\b")
_STABLE = re.compile(r"\b(?:stable|unchanged|no change|not changed|without change|similar to "
                     r"(?:the )?prior|similar|again seen)\b")
_STRUCTURE = re.compile(r"silhouette|contour|configuration|size|heart|shadow|mediastin")
_ENLARGED_WORD = re.compile(r"cardiomegaly|enlarg")
# a clause boundary: cues on the other side of it do not reach a mention
_PRE_STOP = re.compile(
    r"\b(?:but|however|although|though|except|aside from|apart from|which|whereas|while|"
    r"there (?:is|are|has been|have been)|now|since)\b|[:]")
_POST_STOP = re.compile(r"\b(?:and|but|however|although|with|which|while|whereas|as)\b|[,:]")
_SENTENCE = re.compile(r"(?<!\d)\.(?!\d)|[;!\n]|(?<=\d)\.(?=\s+[A-Za-z])")
_WORD = re.compile(r"[a-z0-9/'?-]+")
_PRE_WINDOW = 8  # words between a pre-cue and its mention
_NORMAL_WINDOW = 3


def _compile(d: dict[str, list[str]]) -> dict[str, re.Pattern]:
    return {k: re.compile("|".join(f"(?:{p})" for p in v)) for k, v in d.items()}


_MENTION_RE = _compile(_MENTION)
_UNMENTION_RE = _compile(_UNMENTION)
_OTHER_RE = re.compile("|".join(f"(?:{p})" for p in _OTHER_ABNORMAL))


def _last_cue(pattern: re.Pattern, text: str, window: int, *, adjacent: bool = False) -> bool:
    """Whether ``pattern`` occurs in ``text`` (the words before a mention, after the last
    clause boundary) at most ``window`` words before its end (with ``adjacent``, also with no
    comma in between: a modifier such as "normal")."""
    for m in pattern.finditer(text):
        rest = text[m.end():]
        if len(_WORD.findall(rest)) <= window and not (adjacent and "," in rest):
            return True
    return False


def _pre_clause(before: str) -> str:
    cut = 0
    for m in _PRE_STOP.finditer(before):
        cut = m.end()
    return before[cut:]


def _post_clause(after: str) -> str:
    m = _POST_STOP.search(after)
    return after[: m.start()] if m else after


def _classify(sentence: str, start: int, end: int, phrase: str) -> float:
    before = sentence[:start]
    pre_full = before[max(0, len(before) - 200):]
    pre = _pre_clause(pre_full)
    post = _post_clause(sentence[end:])
    if _PRE_NEG_UNCERTAIN.search(pre) and _last_cue(_PRE_NEG_UNCERTAIN, pre, _PRE_WINDOW):
        return UNCERTAIN
    if _POST_NEG_UNCERTAIN.search(sentence[end:end + 60]):
        return UNCERTAIN
    normal = _last_cue(_PRE_NORMAL, pre, _NORMAL_WINDOW, adjacent=True)
    if normal or _last_cue(_PRE_NEG, pre, _PRE_WINDOW):
        return NEGATIVE
    if _POST_NEG.search(post):
        return NEGATIVE
    if _last_cue(_UNCERTAIN, pre, _PRE_WINDOW) or _POST_UNCERTAIN.search(post):
        return UNCERTAIN
    if _STRUCTURE.search(phrase) and not _ENLARGED_WORD.search(phrase) and _STABLE.search(
            sentence) and not _ENLARGED_WORD.search(sentence):
        return UNCERTAIN
    return POSITIVE


def _mentions(sentence: str) -> Iterable[tuple[str, float]]:
    for obs, rx in _MENTION_RE.items():
        skip = [(m.start(), m.end()) for m in _UNMENTION_RE[obs].finditer(sentence)] if (
            obs in _UNMENTION_RE) else []
        for m in rx.finditer(sentence):
            if any(a <= m.start() < b or a < m.end() <= b for a, b in skip):
                continue
            yield obs, _classify(sentence, m.start(), m.end(), m.group(0))


def _aggregate(labels: list[float]) -> float:
    s = set(labels)
    if POSITIVE in s:
        return POSITIVE
    if UNCERTAIN in s:
        return UNCERTAIN
    return NEGATIVE


@lru_cache(maxsize=65536)
def _label_cached(text: str) -> tuple[float, ...]:
    found: dict[str, list[float]] = {}
    other_asserted = False
    heart_failure = False
    for sentence in _SENTENCE.split(text.lower()):
        if not sentence.strip():
            continue
        for obs, lab in _mentions(sentence):
            found.setdefault(obs, []).append(lab)
        for m in re.finditer(r"\bheart failure\b|\bchf\b", sentence):
            if _classify(sentence, m.start(), m.end(), m.group(0)) != NEGATIVE:
                heart_failure = True
        for m in _OTHER_RE.finditer(sentence):
            if _classify(sentence, m.start(), m.end(), m.group(0)) != NEGATIVE:
                other_asserted = True
    if heart_failure:
        found.setdefault("Cardiomegaly", []).append(UNCERTAIN)
    out = {obs: _aggregate(v) for obs, v in found.items()}
    any_finding = any(v in (POSITIVE, UNCERTAIN) for k, v in out.items() if k != "Support Devices")
    if not any_finding and not other_asserted:
        out["No Finding"] = POSITIVE
    return tuple(out.get(o, np.nan) for o in OBSERVATIONS)


def label_report(text: str) -> dict[str, float]:
    """CheXpert-style labels of one report: observation -> 1 (positive), 0 (negative), -1
    (uncertain) or NaN (not mentioned), as the CheXpert labeler's ``labeled_reports.csv``.

    Examples
    --------
    >>> lab = label_report("Cardiomegaly without overt edema. May reflect atelectasis.")
    >>> lab["Cardiomegaly"], lab["Edema"], lab["Atelectasis"]
    (1.0, 0.0, -1.0)
    """
    if not isinstance(text, str) or not re.search(r"[A-Za-z]", text):
        raise FairfoundryError(f"a report must be non-empty text, got {text!r}")
    return dict(zip(OBSERVATIONS, _label_cached(text), strict=True))


def label_reports(reports, *, name: str = "reports", rows=None) -> pd.DataFrame:
    """Label many reports: one row per report, the 14 :data:`OBSERVATIONS` as columns (codes as
    :func:`label_report`).

    Parameters
    ----------
    reports : sequence of str
    name : what the reports are, for messages (e.g. the column name).
    rows : callable ``i -> str`` naming row ``i`` in messages (default ``"row i+1"``).

    Raises
    ------
    FairfoundryError
        Naming the first report that is empty, missing or not text.
    """
    values = list(reports)
    namer = rows or (lambda i: f"row {i + 1}")
    out = np.empty((len(values), len(OBSERVATIONS)))
    for i, t in enumerate(values):
        if not isinstance(t, str) or not re.search(r"[A-Za-z]", t):
            if t is None or (isinstance(t, float) and np.isnan(t)):
                what = "is empty (no report)"
            elif isinstance(t, str) and not t.strip():
                what = "is empty"
            else:
                what = f"is not text ({t!r})"
            raise FairfoundryError(f"{name}: {namer(i)} {what}",
                                   hint="every report must be non-empty text; drop or fill "
                                        "that row")
        out[i] = _label_cached(t)
    return pd.DataFrame(out, columns=list(OBSERVATIONS))
