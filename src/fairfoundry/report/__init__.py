"""Reports: self-contained HTML pages, plots, model cards and datasheets."""

from ._html import esc, figure_html, figure_to_data_uri, render_page, table_html

__all__ = ["esc", "figure_html", "figure_to_data_uri", "render_page", "table_html"]
