"""The Starlette app of `okrsync serve`: webhooks in, dashboard, status API, health and metrics out."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from okrsync.config.settings import env_name

from . import metrics
from .events import BadPayload, parse_event
from .service import Service
from .signatures import verify

log = logging.getLogger("okrsync.serve")

TOKEN_COOKIE = "okrsync_token"
EVENT_TICK = 0.5  # seconds between the live stream's looks at the status version
KEEPALIVE_TICKS = 30  # a comment line every 15 s keeps proxies from closing an idle stream
WAITING_PAGE = ("<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='2'>"
                "<title>okrsync</title></head><body><p>okrsync serve: the first sync is running; this page "
                "refreshes itself.</p></body></html>")
LIVE_SCRIPT = """<script id="okrsync-live">
(function () {
  var root = document.documentElement, version = %d, busy = false, again = false, polling = null;
  root.dataset.liveVersion = String(version);
  root.dataset.liveUpdates = root.dataset.liveUpdates || "0";
  function refresh(v) {
    if (v === version) return;
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname, {cache: "no-store", credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      var got = parseInt(r.headers.get("X-Okrsync-Version") || "0", 10);
      return r.text().then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var me = document.getElementById("okrsync-live");
        var nodes = Array.prototype.filter.call(doc.body.childNodes, function (n) { return n.id !== "okrsync-live"; });
        document.body.replaceChildren.apply(document.body, nodes.map(function (n) { return document.adoptNode(n); }));
        document.body.appendChild(me);
        version = got;
        root.dataset.liveVersion = String(got);
        root.dataset.liveUpdates = String(parseInt(root.dataset.liveUpdates, 10) + 1);
      });
    }).catch(function () {}).then(function () { busy = false; if (again) { again = false; check(); } });
  }
  function check() {
    fetch("/api/version", {cache: "no-store", credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (d) { refresh(d.version); }).catch(function () {});
  }
  function poll() { if (!polling) polling = setInterval(check, 5000); }
  if (window.EventSource) {
    var es = new EventSource("/api/events");
    es.addEventListener("status", function (e) { refresh(JSON.parse(e.data).version); });
    es.onerror = poll;
  } else { poll(); }
})();
</script>"""


def create_app(service: Service) -> Starlette:
    registry = metrics.registry_for(service)
    token = service.options.token

    def authorized(request: Request) -> bool:
        if not token:
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(TOKEN_COOKIE, "")
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    def refused() -> Response:
        return JSONResponse({"error": "a bearer token is required (Authorization: Bearer $OKRSYNC_SERVE_TOKEN)"},
                            401, headers={"WWW-Authenticate": 'Bearer realm="okrsync"'})

    async def webhook(request: Request) -> Response:
        source = request.path_params["source"]
        kind = service.source_type(source)
        if kind is None:
            return JSONResponse({"error": f"no source {source!r} in the workspace"}, 404)
        body = await _read_limited(request, service.options.max_body)
        if body is None:
            service.count_webhook(source, "too_large")
            log.warning("webhook %s: body over %d bytes refused", source, service.options.max_body)
            return JSONResponse({"error": f"body over {service.options.max_body} bytes"}, 413)
        secret = service.secret(source)
        if not verify(kind, secret, request.headers, body):
            service.count_webhook(source, "unauthorized")
            why = "signature missing or wrong" if secret else \
                f"no webhook secret configured ({env_name(source, 'webhook_secret')})"
            peer = request.client.host if request.client else "?"
            log.warning("webhook %s: refused (%s) from %s, %d bytes", source, why, peer, len(body))
            return JSONResponse({"error": "invalid signature"}, 401)
        try:
            event = parse_event(source, kind, request.headers, body)
        except BadPayload as exc:
            service.count_webhook(source, "bad_request")
            return JSONResponse({"error": str(exc)}, 400)
        if not event.relevant:
            service.count_webhook(source, "ignored")
            return JSONResponse({"ignored": event.name}, 202)
        if event.delivery and not service.deliveries.first_time(source, event.delivery):
            service.count_webhook(source, "duplicate")
            return JSONResponse({"duplicate": event.delivery}, 200)
        if event.deletions:
            await run_in_threadpool(service.mark_deleted, source, event.deletions)
        service.worker.trigger(source, event.streams)
        service.count_webhook(source, "accepted")
        return JSONResponse({"accepted": event.name, "sync": "scheduled"}, 202)

    async def dashboard(request: Request) -> Response:
        given = request.query_params.get("token")
        if given and token and hmac.compare_digest(given.encode(), token.encode()):
            response = RedirectResponse("/", 303)  # the token moves to a cookie; the URL loses it
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
            return response
        if not authorized(request):
            return refused()
        page = await run_in_threadpool(service.dashboard)
        if page is None:
            return HTMLResponse(WAITING_PAGE, 503, headers={"Retry-After": "2", "Cache-Control": "no-store"})
        version, html = page
        script = LIVE_SCRIPT % version
        at = html.rfind("</body>")
        html = html[:at] + script + html[at:] if at >= 0 else html + script
        return HTMLResponse(html, headers={"X-Okrsync-Version": str(version), "Cache-Control": "no-store"})

    async def api_status(request: Request) -> Response:
        if not authorized(request):
            return refused()
        doc = service.status()
        if doc is None:
            return JSONResponse({"error": "no status yet: the first sync is running"}, 503)
        return JSONResponse(doc, headers={"X-Okrsync-Version": str(service.version)})

    async def api_kr(request: Request) -> Response:
        if not authorized(request):
            return refused()
        kr_id = request.path_params["kr_id"]
        doc = await run_in_threadpool(service.explain, kr_id)
        if doc is None:
            code = 503 if service.computation is None else 404
            return JSONResponse({"error": f"no key result {kr_id!r}" if code == 404 else "no status yet"}, code)
        return JSONResponse(json.loads(json.dumps(doc, default=str)))

    async def api_version(request: Request) -> Response:
        if not authorized(request):
            return refused()
        return JSONResponse({"version": service.version})

    async def api_events(request: Request) -> Response:
        if not authorized(request):
            return refused()
        return StreamingResponse(_events(service), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def healthz(request: Request) -> Response:
        doc = service.health_document() if authorized(request) else {"status": "ok" if service.ready else "starting"}
        return JSONResponse(doc, 200 if service.ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        if not authorized(request):
            return refused()
        return Response(metrics.render(registry), media_type=metrics.CONTENT_TYPE)

    routes = [
        Route("/webhooks/{source}", webhook, methods=["POST"]),
        Route("/", dashboard, methods=["GET"]),
        Route("/api/status", api_status, methods=["GET"]),
        Route("/api/kr/{kr_id}", api_kr, methods=["GET"]),
        Route("/api/version", api_version, methods=["GET"]),
        Route("/api/events", api_events, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    return Starlette(routes=routes)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it is over `limit` bytes (by Content-Length, else while it streams in)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _events(service: Service) -> AsyncIterator[str]:
    """Server-sent events: `status` with the version whenever the status document changes; ends on shutdown."""
    last, ticks = -1, 0
    while not service.closing.is_set():
        version = service.version
        if version != last:
            last, ticks = version, 0
            yield f"event: status\ndata: {json.dumps({'version': version})}\n\n"
        elif ticks >= KEEPALIVE_TICKS:
            ticks = 0
            yield ": keep-alive\n\n"
        await asyncio.sleep(EVENT_TICK)
        ticks += 1
