"""Connection failures that name their fix (a host that does not resolve, a plain-HTTP port spoken to in TLS), or
that are safe to resend."""

from __future__ import annotations

import re
import socket
from typing import Iterator

# getaddrinfo's "no such name" answers; EAI_AGAIN (a DNS server that did not answer) stays retryable.
_NO_NAME = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL") if hasattr(socket, n)}
_NO_NAME_TEXT = ("name or service not known", "nodename nor servname", "no address associated with hostname",
                 "non-recoverable failure in name resolution")
_RESOLVE = re.compile(r"Failed to resolve '([^']+)'|host='([^']+)'")
# What OpenSSL says when the answer to its ClientHello is plain HTTP ("HTTP/1.1 400 ...") rather than TLS.
_NOT_TLS_TEXT = ("wrong version number", "wrong_version_number", "record layer failure", "record_layer_failure",
                 "http request", "packet length too long", "unknown protocol")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """exc, its causes and contexts, and what urllib3/requests wrap in args or .reason (each once)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [e.__cause__, e.__context__, getattr(e, "reason", None), *getattr(e, "args", ())]
        todo.extend(x for x in nested if isinstance(x, BaseException))


def unresolvable_host(exc: BaseException, url: str = "") -> str | None:
    """The host name (from the error, else from `url`) when `exc` is a DNS lookup that says the name does not
    exist; else None."""
    hit = False
    for e in _chain(exc):
        if (isinstance(e, socket.gaierror) and e.errno in _NO_NAME) or any(t in str(e).lower()
                                                                           for t in _NO_NAME_TEXT):
            hit = True
    if not hit:
        return None
    for e in _chain(exc):
        m = _RESOLVE.search(str(e))
        if m:
            return m.group(1) or m.group(2)
    return host_of(url) or "?"


def speaks_no_tls(exc: BaseException) -> bool:
    """True when a TLS handshake was answered by something that is not TLS (an http:// port given as https://)."""
    return any(t in str(e).lower() for e in _chain(exc) for t in _NOT_TLS_TEXT)


def host_of(url: str) -> str:
    """The host of a URL, for a message that names it."""
    m = re.match(r"^[a-z]+://([^/:?#]+)", url, re.I)
    return m.group(1) if m else url


def not_sent(exc: Exception) -> bool:
    """A connection refused/reset before the request went out is safe to resend."""
    text = str(exc).lower()
    return "refused" in text or "name or service" in text or "nodename" in text


def short_reason(exc: Exception) -> str:
    """A connection failure in a few words (for the retry log line and the final error)."""
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "RemoteDisconnected", "Connection aborted",
                   "Read timed out", "Max retries exceeded"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
