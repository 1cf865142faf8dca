"""The one model-card renderer: Markdown + JSON, sections after Mitchell et al. (FAT* 2019).

The cards of fit runs (:mod:`fairfoundry.mitigate._card`) and of pre-training / distillation runs
(:mod:`fairfoundry.pretrain._card`) build their sections as plain data and write them here, so
both share the title line, the section layout, the number formats and the atomic writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["card_value", "card_ci", "card_code", "emissions_lines", "write_card"]

#: the line under every card's title
MITCHELL = "Sections after Mitchell et al., *Model Cards for Model Reporting*, FAT* 2019."


def card_value(v) -> str:
    """A number with three decimals (``n/a`` for NaN / None); anything else as text."""
    if v is None:
        return "n/a"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "n/a" if math.isnan(v) else f"{v:.3f}"


def card_ci(est, lo, hi) -> str:
    """``estimate [low, high]`` with :func:`card_value`'s format."""
    return f"{card_value(est)} [{card_value(lo)}, {card_value(hi)}]"


def card_code(text) -> str:
    """User text as a Markdown code span: no escapes shown, backticks and line breaks removed."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


def emissions_lines(emissions: dict | None) -> list[str]:
    """The body of the card's ``Emissions`` section."""
    emissions = emissions or {}
    if emissions.get("tracker"):
        return [f"- {card_value(emissions.get('emissions_kg_co2eq'))} kg CO2eq, "
                f"{card_value(emissions.get('energy_kwh'))} kWh over {card_value(emissions.get('duration_s'))} s "
                f"of training ({emissions.get('country_iso_code')}); {emissions.get('note', '')}"]
    return [f"- not measured: {emissions.get('note', '')}"]


def write_card(directory: str | Path, *, title: str, card: dict,
               sections: Sequence[tuple[str | None, Sequence[str]]]) -> None:
    """Write ``model_card.json`` (``card``) and ``model_card.md`` into ``directory``.

    Parameters
    ----------
    title : the model's name (escaped for Markdown here)
    card : the JSON card (plain data)
    sections : ``(heading, lines)`` in order; a ``None`` heading inserts the lines as they are
        (a block that brings its own headings). Lines are Markdown: user-supplied text in them
        must already be escaped (:func:`fairfoundry._io.md_escape`).
    """
    from .._io import md_escape, write_json_atomic, write_text_atomic

    directory = Path(directory)
    write_json_atomic(directory / "model_card.json", card)
    md = [f"# Model card: {md_escape(title)}", "", MITCHELL]
    for heading, lines in sections:
        md += ["", f"## {heading}", "", *lines] if heading is not None else ["", *lines]
    write_text_atomic(directory / "model_card.md", "\n".join(md) + "\n")
