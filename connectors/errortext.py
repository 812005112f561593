"""The human message of an error response, out of the four APIs' error shapes."""

from __future__ import annotations

from typing import Any

import requests


def body_of(resp: requests.Response) -> Any:
    """The parsed JSON of an error response, else the start of its text."""
    try:
        return resp.json()
    except ValueError:
        return resp.text[:200]


def error_text(body: Any) -> str:
    """Pull the human message out of the APIs' error shapes."""
    if isinstance(body, dict):
        msgs = body.get("errorMessages") or []  # Jira
        errs = body.get("errors")
        if isinstance(errs, dict):  # Jira field errors
            msgs += [f"{k}: {v}" for k, v in errs.items()]
        if isinstance(body.get("error"), dict):  # ServiceNow / PagerDuty
            e = body["error"]
            msgs += [str(e.get("message") or ""), str(e.get("detail") or "")]
            if isinstance(e.get("errors"), list):
                msgs += [str(x) for x in e["errors"]]
        if body.get("message"):  # GitHub
            msgs.append(str(body["message"]))
        return "; ".join(m for m in msgs if m)[:300]
    return str(body or "").strip().replace("\n", " ")[:200]
