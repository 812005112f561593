"""Logging set-up: plain or JSON lines on stderr, with every known secret redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from okrsync.config.settings import minted_secrets
from okrsync.connectors.base import redact


class RedactingFilter(logging.Filter):
    """Replaces secret values in every record's final message (and drops exc args that hold them)."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets or minted_secrets():  # (tokens minted at run time are redacted by redact() itself)
            record.msg = self.redact(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("event", "source", "stream", "run_id", "kr", "fetched", "requests", "seconds"):
            if hasattr(record, key):
                body[key] = getattr(record, key)
        if record.exc_text:
            body["exc"] = record.exc_text
        return json.dumps(body, default=str)


def setup_logging(level: str = "warning", fmt: str = "text", secrets: list[str] | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(secrets or []))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))
    # libraries log request URLs at debug; keep them quiet unless asked for
    for noisy in ("urllib3", "github", "jira", "requests"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.INFO))
