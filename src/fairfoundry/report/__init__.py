"""Reports: self-contained HTML pages, plots, model cards and datasheets."""

from ._evaluation import evaluation_report_html, gap_readings, too_few_readings
from ._html import esc, figure_html, figure_to_data_uri, render_page, table_html

__all__ = ["evaluation_report_html", "gap_readings", "too_few_readings", "esc", "figure_html", "figure_to_data_uri", "render_page", "table_html"]
