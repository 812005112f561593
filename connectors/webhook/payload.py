"""Pure webhook bodies (okrsync JSON event, Slack message), HMAC signing and the receiver's check."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from okrsync.domain.status import KRStatus
from okrsync.domain.text import fmt_number, fmt_pct

EVENT = "okrsync.kr_status"
SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-Okrsync-Signature"
TIMESTAMP_HEADER = "X-Okrsync-Timestamp"
EVENT_HEADER = "X-Okrsync-Event"
DELIVERY_HEADER = "X-Okrsync-Delivery"
TOLERANCE_SECONDS = 300  # what we recommend receivers accept between the timestamp and their clock

EMOJI = {
    "achieved": ":trophy:",
    "on_track": ":large_green_circle:",
    "at_risk": ":large_yellow_circle:",
    "off_track": ":red_circle:",
    "no_data": ":white_circle:",
    "not_started": ":hourglass_flowing_sand:",
}
# Hosts whose webhook URL carries its own secret as the last path segment.
TOKEN_IN_PATH_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com")


# -- URLs ---------------------------------------------------------------------------------------
def display_url(url: str, fmt: str) -> tuple[str, list[str]]:
    """(the URL as shown in messages and plans, the URL parts to redact anywhere).

    The query string is dropped. Slack-style URLs (format slack, or a known host) carry their secret as
    the last path segment (hooks.slack.com/services/T…/B…/<secret>): that segment is shown as ***.
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    hidden = [v for _, v in parse_qsl(parts.query, keep_blank_values=False) if len(v) >= 4]
    segments = path.split("/")
    host = (parts.hostname or "").lower()
    if (fmt == "slack" or host in TOKEN_IN_PATH_HOSTS) and len([s for s in segments if s]) >= 2:
        hidden.append(segments[-1])
        segments[-1] = "***"
        path = "/".join(segments)
    return f"{parts.scheme}://{parts.netloc}{path}", hidden


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- the okrsync JSON event ---------------------------------------------------------------------
def event_body(status: KRStatus, *, delivery: str, sent_at: str) -> dict[str, Any]:
    """The JSON event (schema documented in writer.py)."""
    kr = {k: _finite(v) for k, v in status.machine().items()}
    return {
        "event": EVENT,
        "schema": SCHEMA_VERSION,
        "delivery": delivery,
        "sent_at": sent_at,
        "fingerprint": status.fingerprint(),
        "kr": kr,
        "status_label": status.label,
        "objective": {"id": status.objective_id, "title": status.objective_title},
        "window": ({"start": status.window_start, "end": status.window_end}
                   if status.window_start or status.window_end else None),
    }


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON with sorted keys."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


# -- Slack incoming-webhook message ------------------------------------------------------------
def _mrkdwn(text: str) -> str:
    """Slack's three control characters; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _bar(progress: float | None, width: int = 10) -> str:
    if progress is None:
        return "░" * width
    filled = int(round(max(0.0, min(1.0, progress)) * width))
    return "▓" * filled + "░" * (width - filled)


def slack_body(status: KRStatus) -> dict[str, Any]:
    """{"text": fallback, "blocks": [...]} for a Slack (or compatible) incoming webhook."""
    s = status
    emoji = EMOJI.get(s.status, ":grey_question:")
    label = s.label + (" (override)" if s.overridden else "")
    value = fmt_number(s.value, s.unit, s.target)
    target = fmt_number(s.target, s.unit)
    fallback = (f"{s.kr_id} {s.title}: {label} — {value} of target {target}, "
                f"progress {fmt_pct(s.progress)} (expected {fmt_pct(s.expected)})")
    header = _cut(f"{s.kr_id} · {s.title}", 150)  # Slack's limit for a header block
    fields = [
        f"*Status*\n{emoji} {_mrkdwn(label)}",
        f"*Value / target*\n{_mrkdwn(value)} / {_mrkdwn(target)}",
        f"*Progress*\n`{_bar(s.progress)}` {fmt_pct(s.progress)}",
        f"*Expected pace*\n{fmt_pct(s.expected)} of the period elapsed",
        f"*Items counted*\n{s.items}",
    ]
    if s.baseline is not None:  # no baseline is shown when none was given
        fields.insert(4, f"*Baseline*\n{_mrkdwn(fmt_number(s.baseline, s.unit, s.target))}")
    context = [f"Objective {s.objective_id} — {s.objective_title}", f"metric {s.metric}"]
    if s.period:
        context.append(f"period {s.period}")
    if s.computed_at:
        context.append(f"computed {s.computed_at}")
    return {
        "text": _mrkdwn(fallback),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_mrkdwn(" · ".join(context)), 2000)}]},
        ],
    }


# -- signing ------------------------------------------------------------------------------------
def sign(secret: str, timestamp: str, body: bytes) -> str:
    """'sha256=' + hex HMAC-SHA256(secret, timestamp + '.' + body) — Stripe's scheme."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, body: bytes, timestamp: str | None, signature: str | None, *, now: float,
           tolerance: float = TOLERANCE_SECONDS) -> bool:
    """The receiver's check (a reference implementation): fresh timestamp, constant-time compare."""
    if not timestamp or not signature:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
