"""Reports: self-contained HTML pages, plots, model cards and datasheets."""

from ._card import card_ci, card_code, card_value, emissions_lines, write_card
from ._evaluation import (
           evaluation_report_html,
           evaluation_summary_html,
           gap_readings,
           too_few_readings,
)
from ._html import esc, figure_html, figure_to_data_uri, format_cell, render_page, table_html
from ._tables import latex_escape, latex_tables, markdown_tables, publication_tables

__all__ = ["evaluation_report_html", "evaluation_summary_html", "gap_readings", "too_few_readings",
           "esc", "figure_html", "figure_to_data_uri", "format_cell", "render_page", "table_html",
           "publication_tables", "markdown_tables", "latex_tables", "latex_escape",
           "card_value", "card_ci", "card_code", "emissions_lines", "write_card"]
