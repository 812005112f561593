"""How numbers, counts and statuses read: the one formatter the console, report and write-back share."""

from __future__ import annotations

PERCENT_UNITS = ("%", "percent")


def _decimals(x: float, limit: int) -> int | None:
    """The fewest decimals that show x exactly, or None when `limit` decimals are not enough."""
    for d in range(limit + 1):
        if abs(round(x, d) - x) <= 1e-9 * max(1.0, abs(x)):
            return d
    return None


def _fixed(x: float, d: int) -> str:
    return f"{x:.{d}f}".rstrip("0").rstrip(".") if d else f"{x:.0f}"


def fmt_number(value: float | None, unit: str | None = None, like: float | None = None) -> str:
    """The one number formatter: a KR number for people, — for no value.

    Fractions with unit '%' read as percentages. A number shows as many digits as it needs to be exact
    (up to 3 decimals), so a target never rounds to another number (99.99%,
    0.999); `like` (the KR's target) lends its digits, and a value that differs from it never looks equal."""
    if value is None:
        return "—"
    pct = unit in PERCENT_UNITS
    x = value * 100 if pct else value
    a = abs(x)
    if not pct and a != 0 and (a < 0.01 or a >= 1e6):
        text = f"{value:.4g}"
    else:
        default = 1 if pct else (0 if float(x).is_integer() else 4 if a < 1 else 2)
        own = _decimals(x, 3)
        d = max(default, own if own is not None else default)
        if like is not None:
            lx = like * 100 if pct else like
            d = max(d, _decimals(lx, 4) or 0)
            while d < 8 and x != lx and round(x, d) == round(lx, d):
                d += 1  # 99.987% next to a 99.99% target must not read 99.99%
        text = _fixed(x, d) if not pct else f"{x:.{d}f}"
        if pct and d > 1:
            text = text.rstrip("0").rstrip(".") if "." in text else text
            if "." not in text:
                text += ".0"
    if pct:
        return f"{text}%"
    return f"{text} {unit}" if unit else text


def plural(n: int, word: str, many: str | None = None) -> str:
    """A count people read: "1 request", "2 requests", "0 objectives" (`many` for an irregular plural)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt_pct(value: float | None, decimals: int = 0, none: str = "—") -> str:
    """A fraction as a whole percentage (progress, score, expected pace): 0.625 -> 62%."""
    return none if value is None else f"{value * 100:.{decimals}f}%"


STATUS_LABELS = {
    "achieved": "achieved",
    "on_track": "on track",
    "at_risk": "at risk",
    "off_track": "off track",
    "no_data": "no data",
    "not_started": "not started",
}
