"""The self-contained HTML report: render_report(comp, store) -> one HTML page (inline CSS and SVG)."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from okrsync.engine.compute import Computation
from okrsync.engine.store import Store

from .model import ITEM_CAP, ReportView, report_view

__all__ = ["render_report", "report_view", "ReportView", "ITEM_CAP"]


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("okrsync.report", "templates"),
        autoescape=True,  # every template, whatever its extension (report.html.j2, report.css)
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )


def render_report(comp: Computation, store: Store) -> str:
    """The whole report as one HTML string; reads the store (items, history), never the network."""
    return _environment().get_template("report.html.j2").render(r=report_view(comp, store))
