"""Paper tables and figures rendered only from run records (design.md §7). Imports pandas/tabulate/matplotlib/numpy
only: never torch, never `methods` or `runners`, so reports render on any machine that has the records.

Layout: `records` (reading records, plans and predictions; the bootstrap's per-user values) and `common` (what an
output receives and returns, names, formats) are the shared helpers and import nothing else in ``reports/``;
`plotting` holds the figure helpers; each output is its own module (`table1` ... `fig8`, `significance`, `sanity`,
`diagnostics`, `curves`) with an `Output`; `render.OUTPUTS` is the one list `report` renders; `summary` is the table
`benchmark run` prints at its end."""

from reports.records import dedupe, load_predictions, load_records
from reports.render import OUTPUTS, render_all

__all__ = ["OUTPUTS", "dedupe", "load_predictions", "load_records", "render_all"]
