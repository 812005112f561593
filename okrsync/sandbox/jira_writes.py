"""Jira write-back endpoints: edit fields (PUT issue), comments kept in place, and issue properties."""

from __future__ import annotations

import json
from typing import Any

from .jira_policy import NO_COMMENT, NO_EDIT
from .jira_render import KR_PROGRESS, KR_STATUS
from .model import POINTS_FIELD, PRIORITIES, Comment, JiraIssue
from .server import BadRequest, Request, Response, json_response

EDITABLE = {"summary", "description", "labels", "duedate", "priority", "assignee", KR_PROGRESS, KR_STATUS}


class JiraWrites:
    """Mixin for JiraApp (uses its world `w`, renderer `r`, mode and _issue()); every write lands in write_log."""

    w: Any
    r: Any
    mode: str
    base_url: str
    service_desks: set[str]
    comment_properties: dict[int, dict[str, Any]]

    def allowed(self, issue: JiraIssue, action: str) -> bool:  # JiraPolicy
        raise NotImplementedError

    def _may(self, issue: JiraIssue, action: str) -> None:
        """Permission errors as the API documents them: editing an issue or its properties is a 403 ("Returned if
        the user does not have permission to edit the issue"); adding a comment lists no 403 (Cloud's OpenAPI: 400,
        401, 404, 413) and answers 400 with Jira's message."""
        if self.allowed(issue, action):
            return
        if action == "comment":
            raise BadRequest(NO_COMMENT, 400)
        raise BadRequest(NO_EDIT, 403)

    def edit_issue(self, req: Request) -> Response:
        issue = self._issue(req)
        self._may(issue, "edit")
        body = req.json() or {}
        if not isinstance(body, dict):
            raise BadRequest("Can not deserialize instance of IssueUpdateBean out of START_ARRAY token")
        changes: dict[str, Any] = dict(body.get("fields") or {})
        for fid, ops in (body.get("update") or {}).items():
            changes[fid] = self._apply_ops(issue, fid, ops)
        errors = {f: f"Field '{f}' cannot be set. It is not on the appropriate screen, or unknown."
                  for f in changes if f not in EDITABLE and f not in self.r.ids["points"]}
        for fid, value in changes.items():
            if fid not in errors and (fid == KR_PROGRESS or fid in self.r.ids["points"]) and value is not None \
                    and not isinstance(value, (int, float)):
                errors[fid] = "Operation value must be a number"
        if errors:
            raise BadRequest("", 400, errors=errors)
        with self.w.lock:
            for fid, value in changes.items():
                self._set_field(issue, fid, value)
            issue.updated = max(issue.updated, self.w.clock())
            self.w.record_write("jira", "edit", issue.key, fields=changes)
            self.w.touch()
        return Response(204)

    def _apply_ops(self, issue: JiraIssue, fid: str, ops: Any) -> Any:
        if fid != "labels":
            value = None
            for op in ops or []:
                value = op.get("set", value)
            return value
        labels = list(issue.labels)
        for op in ops or []:
            if "set" in op:
                labels = list(op["set"])
            if "add" in op and op["add"] not in labels:
                labels.append(op["add"])
            if "remove" in op and op["remove"] in labels:
                labels.remove(op["remove"])
        return labels

    def _set_field(self, issue: JiraIssue, fid: str, value: Any) -> None:
        if fid == "summary":
            issue.summary = str(value)
        elif fid == "labels":
            issue.labels = tuple(str(x) for x in (value or []))
        elif fid == "priority":
            wanted = str((value or {}).get("name") or (value or {}).get("id") or "")
            issue.priority = next((n for n, p in enumerate(PRIORITIES) if wanted in p), issue.priority)
        elif fid == "assignee":
            ident = (value or {}).get("accountId") or (value or {}).get("name")
            issue.assignee = next((u.index for u in self.w.users if ident in (u.account_id, u.login)), None)
        elif fid in self.r.ids["points"] and (self.mode == "server" or fid == _own_points(issue)):
            issue.points = None if value is None else float(value)
        else:
            if issue.fields is None:
                issue.fields = {}
            issue.fields[fid] = value

    # -- comments ----------------------------------------------------------------------------------------
    def list_comments(self, req: Request) -> Response:
        issue = self._issue(req)
        start = max(0, _int(req.arg("startAt"), 0, "startAt"))
        limit = max(0, min(_int(req.arg("maxResults"), 5000, "maxResults"), 5000))
        with self.w.lock:
            comments = list(self.w.comments.get(issue.key, []))
            if (req.arg("orderBy") or "").startswith("-"):
                comments.reverse()
            page = [self.r.comment(c) for c in comments[start:start + limit]]
        return json_response(200, {"startAt": start, "maxResults": limit, "total": len(comments), "comments": page})

    def _comment_body(self, req: Request) -> tuple[str, dict[str, Any]]:
        """The comment's body text and its `properties` ([{key, value}], e.g. JSM's sd.public.comment)."""
        body = req.json() or {}
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("", 400, errors={"comment": "Comment body can not be empty!"})
        props = body.get("properties") or []
        if not isinstance(props, list) or not all(isinstance(p, dict) and isinstance(p.get("key"), str)
                                                  for p in props):
            raise BadRequest("Invalid request payload. Refer to the REST API documentation and try again.")
        return text, {p["key"]: p.get("value") for p in props}

    def _visibility(self, issue: JiraIssue, c: Comment) -> dict[str, Any]:
        """Who sees the comment: on a service-desk project a comment is public (mailed to the customer) unless
        sd.public.comment says {"internal": true} (Atlassian: "Jira Service Management: add internal comments
        through the REST API"); elsewhere the property means nothing."""
        if issue.project not in self.service_desks:
            return {}
        internal = (self.comment_properties.get(c.id, {}).get("sd.public.comment") or {}).get("internal") is True
        return {"service_desk": True, "internal": internal, "customer_notified": not internal}

    def add_comment(self, req: Request) -> Response:
        issue = self._issue(req)
        text, props = self._comment_body(req)
        self._may(issue, "comment")
        with self.w.lock:
            c = Comment(self.w.next_id("jira_comment", 10100), issue.key, text, self.w.bot, self.w.clock())
            self.w.comments.setdefault(issue.key, []).append(c)
            self.w.comment_by_id[c.id] = c
            if props:
                self.comment_properties[c.id] = props
            issue.updated = max(issue.updated, c.created)
            self.w.record_write("jira", "comment", issue.key, comment_id=str(c.id), body=text,
                                **self._visibility(issue, c))
            self.w.touch()
            return json_response(201, self.r.comment(c))

    def _comment(self, req: Request, issue: JiraIssue) -> Comment:
        cid = req.params["cid"]
        c = self.w.comment_by_id.get(int(cid)) if cid.isdigit() else None
        if c is None or c.issue != issue.key:
            raise BadRequest(f"Can not find a comment for the id: {cid}.", 404)
        return c

    def get_comment(self, req: Request) -> Response:
        issue = self._issue(req)
        with self.w.lock:
            return json_response(200, self.r.comment(self._comment(req, issue)))

    def edit_comment(self, req: Request) -> Response:
        issue = self._issue(req)
        text, props = self._comment_body(req)
        self._may(issue, "comment")
        with self.w.lock:
            c = self._comment(req, issue)
            c.body, c.updated = text, max(c.created, self.w.clock())
            if props:
                self.comment_properties.setdefault(c.id, {}).update(props)
            issue.updated = max(issue.updated, c.updated)
            self.w.record_write("jira", "comment_edit", issue.key, comment_id=str(c.id), body=text,
                                **self._visibility(issue, c))
            self.w.touch()
            return json_response(200, self.r.comment(c))

    def delete_comment(self, req: Request) -> Response:
        issue = self._issue(req)
        with self.w.lock:
            c = self._comment(req, issue)
            self.w.comments[issue.key].remove(c)
            del self.w.comment_by_id[c.id]
            self.w.record_write("jira", "comment_delete", issue.key, comment_id=str(c.id))
            self.w.touch()
        return Response(204)

    # -- issue properties --------------------------------------------------------------------------------
    def list_properties(self, req: Request) -> Response:
        issue = self._issue(req)
        keys = [{"self": f"{self.base_url}/rest/api/2/issue/{issue.id}/properties/{k}", "key": k}
                for k in self.w.properties.get(issue.key, {})]
        return json_response(200, {"keys": keys})

    def get_property(self, req: Request) -> Response:
        issue = self._issue(req)
        props = self.w.properties.get(issue.key, {})
        name = req.params["prop"]
        if name not in props:
            raise BadRequest(f"The property with key '{name}' does not exist.", 404)
        return json_response(200, {"key": name, "value": props[name]})

    def put_property(self, req: Request) -> Response:
        issue = self._issue(req)
        self._may(issue, "edit")
        name = req.params["prop"]
        if len(name) > 255:
            raise BadRequest("The property key cannot be longer than 255 characters.")
        if len(req.body) > 32768:
            raise BadRequest("The property value cannot be longer than 32768 characters.")
        try:
            value = json.loads(req.body.decode("utf-8"))
        except ValueError:
            raise BadRequest("The property value must be a valid JSON.") from None
        with self.w.lock:
            props = self.w.properties.setdefault(issue.key, {})
            created = name not in props
            props[name] = value  # like Jira, a property write does not bump the issue's `updated`
            self.w.record_write("jira", "property", issue.key, key=name, value=value)
            self.w.touch()
        return Response(201 if created else 200)

    def delete_property(self, req: Request) -> Response:
        issue = self._issue(req)
        self._may(issue, "edit")
        with self.w.lock:
            if self.w.properties.get(issue.key, {}).pop(req.params["prop"], None) is None:
                raise BadRequest(f"The property with key '{req.params['prop']}' does not exist.", 404)
            self.w.touch()
        return Response(204)


    # -- comment properties (GET /rest/api/2/comment/{commentId}/properties[/{propertyKey}]) -------------------
    def _comment_by_id(self, req: Request) -> Comment:
        cid = req.params["cid"]
        c = self.w.comment_by_id.get(int(cid)) if cid.isdigit() else None
        if c is None:
            raise BadRequest(f"Can not find a comment for the id: {cid}.", 404)
        return c

    def list_comment_properties(self, req: Request) -> Response:
        c = self._comment_by_id(req)
        keys = [{"self": f"{self.base_url}/rest/api/2/comment/{c.id}/properties/{k}", "key": k}
                for k in self.comment_properties.get(c.id, {})]
        return json_response(200, {"keys": keys})

    def get_comment_property(self, req: Request) -> Response:
        c = self._comment_by_id(req)
        name = req.params["prop"]
        props = self.comment_properties.get(c.id, {})
        if name not in props:
            raise BadRequest(f"The property with key '{name}' does not exist.", 404)
        return json_response(200, {"key": name, "value": props[name]})


def _own_points(issue: JiraIssue) -> str:
    return POINTS_FIELD[issue.project]


def _int(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"The {name} parameter must be an integer.") from None
