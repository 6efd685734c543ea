"""Paper tables rendered only from run records (design.md §7). Imports pandas/tabulate/numpy only: never torch,
never `methods` or `runners`, so reports render on any machine that has the records."""

from reports.records import dedupe, load_predictions, load_records
from reports.tables import render_all, table2, table3, tex_escape

__all__ = ["dedupe", "load_predictions", "load_records", "render_all", "table2", "table3", "tex_escape"]
