"""The plumbing every metric shares: windows, results, plans (one SQL query plus a pure reduction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, TypeVar

from okrsync.domain.records import iso

from .selectors import Selection

WEEK_DAYS = 7.0
_MUL, _MOD = 2654435761, 4294967311  # a multiplicative hash of rowids for the set fingerprint
FP_SQL = f"count(*), total(t.rowid), total((t.rowid * {_MUL}) % {_MOD})"

# A result row and a statement's parameters, as SQLite gives and takes them (column types vary by query).
Row = tuple[Any, ...]
Params = list[Any]
Detail = dict[str, Any]  # what a result says besides its value (counts, reasons), shown by explain and the report
T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime  # exclusive

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())

    @property
    def days(self) -> float:
        return self.seconds / 86400.0

    @property
    def weeks(self) -> float:
        return self.days / WEEK_DAYS


@dataclass
class MetricResult:
    value: float | None
    items: int = 0
    fingerprint: str = "0:0:0"
    detail: Detail = field(default_factory=dict)
    # how to list the counted items: a query returning "source:id", or the rowids of a table
    ids_sql: tuple[str, Params] | None = None
    rowids: tuple[str, list[int]] | None = None


@dataclass
class MetricPlan:
    sql: str
    params: Params
    reduce: Callable[[list[Row]], MetricResult]
    # order statistics (median, pNN) of a value column, fetched by the engine after the first query:
    # (sql with LIMIT ? OFFSET ?, params, positions wanted given the count)
    order_stats: tuple[str, Params, Callable[[int], list[int]]] | None = None
    finish: Callable[[MetricResult, dict[int, float]], MetricResult] | None = None
    # side queries the engine runs too; reduce_with(rows, [side rows...]) then replaces reduce
    side: list[tuple[str, Params]] = field(default_factory=list)
    reduce_with: Callable[[list[Row], list[list[Row]]], MetricResult] | None = None


def fingerprint_of(rowids: list[int]) -> str:
    """The same checksum as FP_SQL, for rows reduced in Python."""
    return f"{len(rowids)}:{sum(rowids)}:{sum((r * _MUL) % _MOD for r in rowids)}"


def _fp(row: Row) -> str:
    return f"{int(row[0])}:{int(row[1] or 0)}:{int(row[2] or 0)}"


def _where(sel: Selection, extra: list[str] | None = None) -> str:
    """The selection's conditions and the metric's. In a time window the window's index is the narrow part
    (a label or JQL member list can hold a third of a source): members are then probed per row, not listed."""
    extra = list(extra or [])
    windowed = any(c.endswith((" >= ?", " < ?")) for c in extra)
    return " AND ".join([sel.clause(probe=windowed), *extra])


def _in_window(col: str, window: Window) -> tuple[list[str], Params]:
    return [f"{col} >= ?", f"{col} < ?"], [iso(window.start), iso(window.end)]


def _not_cancelled(sel: Selection) -> list[str]:
    """A cancelled incident was never restored, resolved or breached: resolution metrics skip it."""
    return ["t.status != 'cancelled'"] if sel.table == "incidents" else []


def _opened_col(sel: Selection) -> str:
    return "t.opened" if sel.table == "incidents" else "t.created"


def _seconds(a: str, b: str) -> str:
    """Exact to the millisecond: julianday() noise is far below 1 ms and rounded away."""
    return f"round((julianday({b}) - julianday({a})) * 86400.0, 3)"


def _aggregate_plan(sel: Selection, cols: list[str], extra: list[str], params: Params,
                    value: Callable[[Row, int], tuple[float | None, Detail]], col_params: Params | None = None,
                    ) -> MetricPlan:
    """One row: fingerprint columns, then cols; value(row_tail, count) -> (value, detail)."""
    where = _where(sel, extra)
    sql = f"SELECT {FP_SQL}{''.join(', ' + c for c in cols)} FROM {sel.table} t WHERE {where}"
    ids = (f"SELECT t.source || ':' || t.id FROM {sel.table} t WHERE {where}", sel.params + params)

    def reduce(rows: list[Row]) -> MetricResult:
        row = rows[0]
        n = int(row[0])
        v, detail = value(row[3:], n)
        return MetricResult(v, n, _fp(row), detail, ids_sql=ids)

    return MetricPlan(sql, (col_params or []) + sel.params + params, reduce)


def _row_plan(sel: Selection, cols: list[str], extra: list[str], params: Params,
              keep: Callable[[Row], T | None], value: Callable[[list[T]], tuple[float | None, Detail]],
              table: str | None = None, sql: str | None = None) -> MetricPlan:
    """One row per item (rowid first); keep(row) -> a value or None to not count the item."""
    sql = sql or f"SELECT t.rowid, {', '.join(cols)} FROM {sel.table} t WHERE {_where(sel, extra)}"

    def reduce(rows: list[Row]) -> MetricResult:
        kept: list[T] = []
        rowids: list[int] = []
        for r in rows:
            k = keep(r)
            if k is not None:
                kept.append(k)
                rowids.append(r[0])
        v, detail = value(kept)
        return MetricResult(v, len(rowids), fingerprint_of(rowids), detail, rowids=(table or sel.table, rowids))

    return MetricPlan(sql, sel.params + params, reduce)
