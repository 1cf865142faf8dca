"""``datasheet.md``: Gebru et al.'s "Datasheets for Datasets" questions, pre-filled.

Source: Gebru T, Morgenstern J, Vecchione B, et al. Datasheets for Datasets. Communications of
the ACM 64(12), 2021 (arXiv:1803.09010). Every question of its seven sections is listed; those
the spec and the audit can answer are answered with the numbers, the others are marked
``**[CURATOR TO ANSWER]**`` so a curator sees exactly what is left to write.
"""

from __future__ import annotations

from .._io import md_escape

__all__ = ["datasheet_markdown", "OPEN_MARK"]

#: marker of questions the curator still has to answer.
OPEN_MARK = "**[CURATOR TO ANSWER]**"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _group_line(audit, attr: str) -> str:
    sub = audit.suppressed(audit.groups[audit.groups["attribute"] == attr])
    items = []
    for g, n, s in zip(sub["group"], sub["n"], sub["share"], strict=True):
        items.append(f"{md_escape(g)} {n}" + (f" ({_pct(s)})" if isinstance(s, float) and s == s
                                              else ""))
    return "; ".join(items)


def datasheet_markdown(audit) -> str:
    """Render the datasheet of an :class:`~fairfoundry.audit.Audit` as Markdown."""
    spec = audit.spec
    s = audit.summary()
    name = md_escape((spec.title if spec is not None else None) or audit.dataset or "this dataset")
    esc = md_escape  # user-supplied text (spec fields, group names) is escaped
    q: list[str] = []

    def ask(question: str, answer: str | None) -> None:
        q.append(f"**{question}**\n\n{answer if answer else OPEN_MARK}\n")

    q.append(f"# Datasheet: {name}\n")
    q.append("Questions from Gebru et al., *Datasheets for Datasets* (CACM 2021). Answers were "
             "pre-filled by `fairfoundry audit-data` from the dataset spec and the audit; every "
             f"{OPEN_MARK} is a question only the dataset's curators can answer. Counts below "
             f"{audit.min_group_size} are suppressed (shown as <{audit.min_group_size}).\n")

    q.append("## Motivation\n")
    ask("For what purpose was the dataset created?",
        esc(spec.description) if spec is not None and spec.description else None)
    ask("Who created the dataset and on behalf of which entity?",
        f"See the citation: {esc(spec.citation)}" if spec is not None else None)
    ask("Who funded the creation of the dataset?", None)
    ask("Any other comments?", None)

    q.append("## Composition\n")
    ask("What do the instances that comprise the dataset represent?",
        f"Medical images ({spec.modality}); task: {spec.task}." if spec is not None else
        "Medical images, one row per image in the manifest.")
    ask("How many instances are there in total?",
        f"{s['n_samples']:,} images of {s['n_patients']:,} patients (as audited).")
    ask("Does the dataset contain all possible instances or is it a sample?", None)
    labels = audit.config.get("labels") or []
    ask("What data does each instance consist of?",
        "An image file and the manifest columns: labels "
        f"({', '.join(labels) if labels else 'none audited'}) and the protected attributes "
        f"{', '.join(s['attributes_recorded']) or 'none'}.")
    ask("Is there a label or target associated with each instance?",
        f"Yes: {', '.join(labels)}." if labels else None)
    def unknown(r):
        if not r.recorded:
            return "not recorded"
        if isinstance(r.n_unknown, str):  # suppressed small count
            return f"unknown for {r.n_unknown} images"
        return f"unknown for {r.n_unknown:,} images ({_pct(r.share_unknown)})"

    missing_lines = [f"- {r.attribute}: {unknown(r)}"
                     for r in audit.suppressed_missingness().itertuples(index=False)]
    ask("Is any information missing from individual instances?",
        "Missingness of each protected attribute:\n\n" + "\n".join(missing_lines))
    ask("Are relationships between individual instances made explicit?",
        "Images of one patient share a `patient_id`." if s["n_patients"] < s["n_samples"]
        else None)
    def sentence(text: str) -> str:
        text = text.strip().rstrip(".")
        return f" {text[:1].upper()}{text[1:]}." if text else ""

    split_note = None
    leak = ("" if audit.leakage is None else
            f" Patients found in more than one split: {len(audit.leakage)}.")
    if spec is not None and spec.split.rule == "column":
        split_note = (f"Yes: the dataset's own split (column `{spec.split.column}`)."
                      + sentence(spec.split.note) + leak)
    elif spec is not None and spec.split.rule == "patient_random":
        split_note = ("No official split is used here: fairfoundry assigned a seeded "
                      "patient-level split ("
                      + " / ".join(f"{k} {100 * v:g} %" for k, v in spec.split.ratios.items())
                      + f" of patients; seed {spec.split.seed}"
                      + (f", stratified by {', '.join(spec.split.stratify)}"
                         if spec.split.stratify else "") + ")."
                      + sentence(spec.split.note) + leak)
    elif audit.leakage is not None:
        split_note = "A `split` column is present." + leak
    ask("Are there recommended data splits?", split_note)
    noise = list(spec.notes) if spec is not None else []
    dup = (f"{s['n_duplicate_files']} image files have a byte-identical twin."
           if s["n_duplicate_files"] else ("No byte-identical image files were found."
                                           if s["n_duplicate_files"] == 0 else None))
    errs = " ".join([*noise, *([dup] if dup else [])])
    ask("Are there any errors, sources of noise, or redundancies in the dataset?", errs or None)
    ask("Is the dataset self-contained, or does it link to external resources?",
        f"Download: {spec.url}" if spec is not None and spec.url else None)
    ask("Does the dataset contain data that might be considered confidential?", None)
    ask("Does the dataset contain data that might be offensive, insulting, threatening, or "
        "cause anxiety?", None)
    sub_lines = []
    for a in audit.attributes:
        sub_lines.append(f"- **{a}**: {_group_line(audit, a)}")
    ask("Does the dataset identify any subpopulations (e.g., by age, gender)?",
        ("Yes. Images per group:\n\n" + "\n".join(sub_lines)) if sub_lines else
        "No protected attribute is recorded.")
    ask("Is it possible to identify individuals, either directly or indirectly?", None)
    ask("Does the dataset contain data that might be considered sensitive in any way (e.g., "
        "race or ethnic origins, health data)?",
        "Yes: it contains health data (medical images and findings)"
        + (f" and the protected attributes {', '.join(s['attributes_recorded'])}."
           if s["attributes_recorded"] else "."))
    imb = audit.suppressed_imbalance()
    imb = imb[imb["attribute"].isin(audit.attributes)]
    if len(imb):
        def ratio(v):
            return (f"suppressed (smallest group < {audit.min_group_size})" if v is None
                    else f"{v:.3f}")

        lines = [f"- {r.attribute}: {r.n_groups} group{'s' if r.n_groups != 1 else ''}, "
                 f"smallest/largest = "
                 f"{ratio(r.min_max_ratio)}, effective number of groups = {r.effective_groups:.2f}"
                 for r in imb.itertuples(index=False)]
        q.append("*Imbalance (from the audit):*\n\n" + "\n".join(lines) + "\n")
    if len(audit.geography):
        geo = audit.suppressed(audit.geography)
        lines = [f"- {r.level}: {md_escape(r.group)} {r.n}" for r in geo.itertuples(index=False)
                 if not (isinstance(r.n, (int, float)) and r.n == 0)]
        empty = [md_escape(r.group) for r in geo.itertuples(index=False)
                 if isinstance(r.n, (int, float)) and r.n == 0]
        if empty:
            lines.append(f"- no images from: {', '.join(empty)}")
        q.append("*Geography (from the audit; income groups: World Bank FY2025):*\n\n"
                 + "\n".join(lines) + "\n")
    if len(audit.small_groups):
        q.append(f"*{len(audit.small_groups)} groups or intersections have fewer than "
                 f"{audit.min_group_size} images; results for them are unreliable.*\n")

    q.append("## Collection process\n")
    ask("How was the data associated with each instance acquired?", None)
    ask("What mechanisms or procedures were used to collect the data?", None)
    ask("If the dataset is a sample from a larger set, what was the sampling strategy?", None)
    ask("Who was involved in the data collection process and how were they compensated?", None)
    ask("Over what timeframe was the data collected?", None)
    ask("Were any ethical review processes conducted?", None)
    ask("Did you collect the data from the individuals in question directly, or obtain it via "
        "third parties or other sources?", None)
    ask("Were the individuals in question notified about the data collection?", None)
    ask("Did the individuals in question consent to the collection and use of their data?", None)
    ask("If consent was obtained, were the consenting individuals provided with a mechanism to "
        "revoke their consent?", None)
    ask("Has an analysis of the potential impact of the dataset and its use on data subjects "
        "been conducted?",
        "A representation audit (this document, `audit.html`, `audit.json`) was run with "
        "fairfoundry; it is not a full data protection impact assessment.")

    q.append("## Preprocessing / cleaning / labeling\n")
    harmon = None
    if spec is not None and spec.attributes:
        lines = []
        for a, attr in spec.attributes.items():
            src = attr.column or (f"constant {attr.value!r}" if attr.value is not None else
                                  attr.birth_date or attr.birth_year)
            extra = (", value map " + ", ".join(f"{k} → {v}" for k, v in attr.map.items())
                     if attr.map else "")
            lines.append(f"- {a}: from {src}{extra}" + (f" ({attr.note})" if attr.note else ""))
        harmon = ("Protected attributes were harmonised by fairfoundry's spec "
                  f"`{spec.name}`:\n\n" + "\n".join(lines))
    ask("Was any preprocessing/cleaning/labeling of the data done?", harmon)
    ask("Was the raw data saved in addition to the preprocessed/cleaned/labeled data?", None)
    ask("Is the software that was used to preprocess/clean/label the data available?",
        "The harmonisation is fairfoundry (Apache-2.0) with the spec named above." if spec
        is not None else None)

    q.append("## Uses\n")
    ask("Has the dataset been used for any tasks already?", None)
    ask("Is there a repository that links to any or all papers or systems that use the dataset?",
        None)
    ask("What (other) tasks could the dataset be used for?", None)
    under = []
    rep = audit.representation
    if rep is not None and len(rep):
        low = rep[rep["ratio"] < 0.8]
        under = [f"{esc(r.attribute)}={esc(r.group)} (ratio {r.ratio:.2f})"
                 for r in low.itertuples(index=False)]
    comp = []
    if s["attributes_missing"]:
        comp.append("Not recorded, so fairness along them cannot be measured: "
                    + ", ".join(s["attributes_missing"]) + ".")
    if under:
        comp.append("Under-represented against the reference population: " + "; ".join(under) + ".")
    ask("Is there anything about the composition of the dataset or the way it was collected "
        "and preprocessed/cleaned/labeled that might impact future uses?",
        " ".join(comp) or None)
    ask("Are there tasks for which the dataset should not be used?", None)

    q.append("## Distribution\n")
    ask("Will the dataset be distributed to third parties outside of the entity on behalf of "
        "which the dataset was created?", None)
    ask("How will the dataset be distributed?",
        esc(spec.url) if spec is not None and spec.url else None)
    ask("When will the dataset be distributed?", None)
    ask("Will the dataset be distributed under a copyright or other intellectual property (IP) "
        "license, and/or under applicable terms of use (ToU)?",
        esc(spec.licence) if spec is not None else None)
    ask("Have any third parties imposed IP-based or other restrictions on the data associated "
        "with the instances?",
        f"Access: {spec.access}." if spec is not None and spec.access != "open" else None)
    ask("Do any export controls or other regulatory restrictions apply to the dataset or to "
        "individual instances?", None)

    q.append("## Maintenance\n")
    ask("Who will be supporting/hosting/maintaining the dataset?", None)
    ask("How can the owner/curator/manager of the dataset be contacted?", None)
    ask("Is there an erratum?", None)
    ask("Will the dataset be updated?", None)
    ask("If the dataset relates to people, are there applicable limits on the retention of the "
        "data associated with the instances?", None)
    ask("Will older versions of the dataset continue to be supported/hosted/maintained?", None)
    ask("If others want to extend/augment/build on/contribute to the dataset, is there a "
        "mechanism for them to do so?", None)
    return "\n".join(q)
