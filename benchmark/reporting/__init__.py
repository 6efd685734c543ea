"""Paper tables and figures rendered only from run records (design.md §7). Imports pandas/tabulate/matplotlib/numpy
and the ground floor of `benchmark` only: never torch, never `methods` or `runners`, so reports render on any machine
that has the records. Outputs go to a folder of their own (`reports/` for the committed reference); no code lives there.

Layout: `benchmark.records` (the record schema: reading records, plans and predictions), `stats` (the bootstrap's
per-user values, CIs and paired tests) and `common` (what an output receives and returns, names, formats) are the
shared helpers and import nothing else in this package; `plotting` holds the figure helpers; each output is its own
module (`table1` ... `fig8`, `significance`, `sanity`, `diagnostics`, `curves`) with an `Output`; `render.OUTPUTS` is
the one list `report` renders; `summary` is the table `benchmark run` prints at its end."""

from benchmark.records import dedupe, load_predictions, load_records
from benchmark.reporting.render import OUTPUTS, render_all

__all__ = ["OUTPUTS", "dedupe", "load_predictions", "load_records", "render_all"]
