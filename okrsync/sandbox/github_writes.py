"""GitHub write-back endpoints: edit an issue's body/title/state/labels, label add/set/remove, comments."""

from __future__ import annotations

from typing import Any

from .model import GhItem
from .server import BadRequest, Request, Response
from .world import Repo


class GitHubWrites:
    """Mixin for GitHubApp: every write bumps the issue's updated_at and lands in World.write_log."""

    w: Any
    r: Any

    def _write(self, r: Repo, it: GhItem, action: str, **payload: Any) -> None:
        it.updated = max(it.updated, self.w.clock())
        self.w.record_write("github", action, f"{r.name}#{it.number}", **payload)
        self.w.touch()

    def edit_issue(self, req: Request) -> Response:
        r, it = self._item(req)
        body = req.json() or {}
        if not isinstance(body, dict):
            raise BadRequest("Invalid request.\n\nInvalid input: not an object.", 422)
        with self.w.lock:
            if "title" in body:
                it.title = str(body["title"])
            if "body" in body:
                it.body = body["body"] or ""
            if "labels" in body:
                it.labels = _label_names(body["labels"])
                for name in it.labels:
                    r.label_id(name)
            if body.get("state") in ("open", "closed") and body["state"] != it.state:
                it.state = body["state"]
                it.closed = self.w.clock() if it.state == "closed" else None
                it.state_reason = body.get("state_reason") or ("completed" if it.state == "closed" else "reopened")
            self._write(r, it, "edit", **{k: body[k] for k in ("title", "body", "labels", "state") if k in body})
            return self.ok(self.r.issue(r, it))

    def list_labels(self, req: Request) -> Response:
        r, it = self._item(req)
        return self.ok([self.r.label(r, x) for x in it.labels])

    def add_labels(self, req: Request) -> Response:
        r, it = self._item(req)
        body = req.json()
        names = _label_names(body.get("labels", []) if isinstance(body, dict) else body or [])
        with self.w.lock:
            for name in names:
                r.label_id(name)
                if name not in it.labels:
                    it.labels.append(name)
            self._write(r, it, "labels_add", labels=names)
            return self.ok([self.r.label(r, x) for x in it.labels])

    def set_labels(self, req: Request) -> Response:
        r, it = self._item(req)
        body = req.json()
        names = _label_names(body.get("labels", []) if isinstance(body, dict) else body or [])
        with self.w.lock:
            it.labels = names
            for name in names:
                r.label_id(name)
            self._write(r, it, "labels_set", labels=names)
            return self.ok([self.r.label(r, x) for x in it.labels])

    def remove_label(self, req: Request) -> Response:
        r, it = self._item(req)
        name = req.params["name"]
        with self.w.lock:
            if name not in it.labels:
                raise BadRequest("Label does not exist", 404,
                                 docs="https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue")
            it.labels.remove(name)
            self._write(r, it, "labels_remove", labels=[name])
            return self.ok([self.r.label(r, x) for x in it.labels])

    def add_comment(self, req: Request) -> Response:
        r, it = self._item(req)
        body = req.json() or {}
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            raise BadRequest("Invalid request.\n\n\"body\" wasn't supplied.", 422)
        with self.w.lock:
            now = self.w.clock()
            c = (self.w.next_id("gh_comment", 3_000_000_000), self.w.bot, text, now, now)
            it.comments.append(c)
            self._write(r, it, "comment", comment_id=c[0], body=text)
            return self.ok(self.r.comment(r, it, c), 201)

    def edit_comment(self, req: Request) -> Response:
        r = self._repo(req)
        cid = int(req.params["cid"]) if req.params["cid"].isdigit() else -1
        body = req.json() or {}
        with self.w.lock:
            for it in r.items:
                for n, c in enumerate(it.comments):
                    if c[0] == cid:
                        it.comments[n] = (c[0], c[1], str(body.get("body", c[2])), c[3], self.w.clock())
                        self._write(r, it, "comment_edit", comment_id=cid, body=it.comments[n][2])
                        return self.ok(self.r.comment(r, it, it.comments[n]))
        raise BadRequest("Not Found", 404)


def _label_names(values: Any) -> list[str]:
    if not isinstance(values, list):
        raise BadRequest("Invalid request.\n\nFor 'properties/labels', is not an array.", 422)
    out: list[str] = []
    for v in values:
        name = v.get("name") if isinstance(v, dict) else v
        if isinstance(name, str) and name and name not in out:
            out.append(name)
    return out
