"""Jira payload shapes (Cloud and Data Center): the field catalogue, issues, users, comments and changelogs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from .model import (
    COMPONENT_IDS,
    DONE,
    IN_REVIEW,
    ISSUE_TYPES,
    POINTS_FIELD,
    PRIORITIES,
    PROJECTS,
    RESOLUTIONS,
    STATUS_CATEGORIES,
    STATUSES,
    TODO,
    UTC,
    Comment,
    JiraIssue,
    jira_time,
)

# Field ids per deployment type. Cloud ids follow a typical company-managed site; Data Center ids follow the
# recorded Jira 8.20 instance in the fixtures (Epic Link 10101, Sprint 10105, Story Points 10107).
FIELD_IDS = {
    "cloud": {"epic_link": "customfield_10014", "sprint": "customfield_10020", "epic_name": "customfield_10011",
              "rank": "customfield_10019", "points": ("customfield_10016", "customfield_10024")},
    "server": {"epic_link": "customfield_10101", "sprint": "customfield_10105", "epic_name": "customfield_10103",
               "rank": "customfield_10106", "points": ("customfield_10107",)},
}
KR_PROGRESS, KR_STATUS = "customfield_10050", "customfield_10051"
_GH = "com.pyxis.greenhopper.jira:"
_CF = "com.atlassian.jira.plugin.system.customfieldtypes:"


def _system(fid: str, name: str, type: str, clauses: tuple[str, ...] = (), orderable: bool = True,
            searchable: bool = True, items: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": type, "system": fid}
    if items:
        schema["items"] = items
    return {"id": fid, "name": name, "custom": False, "orderable": orderable, "navigable": True,
            "searchable": searchable, "clauseNames": list(clauses or (fid,)), "schema": schema}


def _custom(fid: str, name: str, type: str, custom: str, items: str | None = None) -> dict[str, Any]:
    cid = int(fid.split("_")[1])
    schema: dict[str, Any] = {"type": type, "custom": custom, "customId": cid}
    if items:
        schema["items"] = items
    return {"id": fid, "name": name, "custom": True, "orderable": True, "navigable": True, "searchable": True,
            "clauseNames": [f"cf[{cid}]", name], "schema": schema}


def field_catalogue(mode: str) -> list[dict[str, Any]]:
    """GET /rest/api/2/field. Cloud entries carry `key` (= id); Data Center's do not."""
    ids = FIELD_IDS[mode]
    out = [
        {"id": "issuekey", "name": "Key", "custom": False, "orderable": False, "navigable": True, "searchable": False,
         "clauseNames": ["id", "issue", "issuekey", "key"]},
        _system("summary", "Summary", "string"), _system("description", "Description", "string"),
        _system("issuetype", "Issue Type", "issuetype", ("issuetype", "type")),
        _system("project", "Project", "project", orderable=False),
        _system("status", "Status", "status", orderable=False),
        _system("statuscategorychangedate", "Status Category Changed", "datetime", ("statusCategoryChangedDate",),
                orderable=False),
        _system("priority", "Priority", "priority"), _system("assignee", "Assignee", "user"),
        _system("reporter", "Reporter", "user"), _system("creator", "Creator", "user", orderable=False),
        _system("created", "Created", "datetime", ("created", "createdDate"), orderable=False),
        _system("updated", "Updated", "datetime", ("updated", "updatedDate"), orderable=False),
        _system("resolution", "Resolution", "resolution"),
        _system("resolutiondate", "Resolved", "datetime", ("resolutiondate", "resolved"), orderable=False),
        _system("labels", "Labels", "array", ("labels",), items="string"),
        _system("components", "Component/s", "array", ("component",), items="component"),
        _system("fixVersions", "Fix Version/s", "array", ("fixVersion",), items="version"),
        _system("duedate", "Due date", "date", ("due", "duedate")),
        _system("subtasks", "Sub-tasks", "array", ("subtasks",), orderable=False, items="issuelinks"),
        _system("comment", "Comment", "comments-page", orderable=True, searchable=True),
        _custom(ids["epic_link"], "Epic Link", "any", _GH + "gh-epic-link"),
        _custom(ids["epic_name"], "Epic Name", "string", _GH + "gh-epic-label"),
        _custom(ids["sprint"], "Sprint", "array", _GH + "gh-sprint", items="json" if mode == "cloud" else "string"),
        _custom(ids["rank"], "Rank", "any", _GH + "gh-lexo-rank"),
        _custom(KR_PROGRESS, "KR Progress", "number", _CF + "float"),
        _custom(KR_STATUS, "KR Status", "string", _CF + "textfield"),
    ]
    if mode == "cloud":
        out.insert(5, _system("parent", "Parent", "issuelink", ("parent",), orderable=True))
        out.append(_custom("customfield_10016", "Story point estimate", "number", _GH + "jsw-story-points"))
        out.append(_custom("customfield_10024", "Story Points", "number", _CF + "float"))
        for f in out:
            f["key"] = f["id"]
            if f["custom"]:
                f["untranslatedName"] = f["name"]
    else:
        out.append(_custom("customfield_10107", "Story Points", "number", _CF + "float"))
    return out


class Renderer:
    """Builds Jira JSON for one deployment mode; static objects (statuses, users, projects) are built once."""

    def __init__(self, world: Any, mode: str, base_url: Callable[[], str]):
        self.w, self.mode, self._base = world, mode, base_url
        self.ids = FIELD_IDS[mode]
        self.catalogue = field_catalogue(mode)
        self.names = {f["id"]: f["name"] for f in self.catalogue}
        self.schemas = {f["id"]: f.get("schema") for f in self.catalogue if f.get("schema")}
        self._static: dict[str, Any] = {}
        self.service_desks: set[str] = set()  # Jira Service Management project keys
        self.comment_properties: dict[int, dict[str, Any]] = {}  # comment id -> {property key: value}
        self._sprints: dict[int, Any] = {}
        self._sprint_version = -1
        self.getters = self._getters()
        self.all_fields = [f for f in self.getters if f != "comment"] + ["comment"]

    @property
    def base(self) -> str:
        return self._base()

    def t(self, ms: int | None) -> str | None:
        return jira_time(ms, self.w.jira_tz)

    # -- static objects ----------------------------------------------------------------------------------
    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._static:
            self._static[key] = build()
        return self._static[key]

    def status(self, n: int) -> dict[str, Any]:
        def build() -> dict[str, Any]:
            sid, name, cat = STATUSES[n]
            cid, ckey, color, cname = STATUS_CATEGORIES[cat]
            return {"self": f"{self.base}/rest/api/2/status/{sid}", "description": "", "iconUrl": f"{self.base}/",
                    "name": name, "id": sid,
                    "statusCategory": {"self": f"{self.base}/rest/api/2/statuscategory/{cid}", "id": cid,
                                       "key": ckey, "colorName": color, "name": cname}}
        return self._cached(f"status:{n}", build)

    def issuetype(self, type: str) -> dict[str, Any]:
        def build() -> dict[str, Any]:
            tid, name, subtask, level, desc = ISSUE_TYPES[type]
            out = {"self": f"{self.base}/rest/api/2/issuetype/{tid}", "id": tid, "description": desc,
                   "iconUrl": f"{self.base}/secure/viewavatar?size=medium&avatarId={10300 + int(tid) % 100}"
                              "&avatarType=issuetype", "name": name, "subtask": subtask,
                   "avatarId": 10300 + int(tid) % 100}
            if self.mode == "cloud":
                out["hierarchyLevel"] = level
            return out
        return self._cached(f"type:{type}", build)

    def priority(self, n: int) -> dict[str, Any]:
        pid, name = PRIORITIES[n]
        return self._cached(f"prio:{n}", lambda: {
            "self": f"{self.base}/rest/api/2/priority/{pid}",
            "iconUrl": f"{self.base}/images/icons/priorities/{name.lower()}.svg", "name": name, "id": pid})

    def project(self, key: str) -> dict[str, Any]:
        pid, name, _team = PROJECTS[key]
        kind = "service_desk" if key in self.service_desks else "software"

        def build() -> dict[str, Any]:
            out = {"self": f"{self.base}/rest/api/2/project/{pid}", "id": pid, "key": key, "name": name,
                   "projectTypeKey": kind,
                   "avatarUrls": {s: f"{self.base}/secure/projectavatar?size={s}&avatarId=10324"
                                  for s in ("48x48", "24x24", "16x16", "32x32")}}
            if self.mode == "cloud":
                out["simplified"] = False
            return out
        return self._cached(f"project:{key}:{kind}", build)

    def user(self, n: int | None) -> dict[str, Any] | None:
        if n is None:
            return None
        u = self.w.users[n]
        def build() -> dict[str, Any]:
            avatars = {s: f"https://avatars.example/{u.login}?s={s.split('x')[0]}"
                       for s in ("48x48", "24x24", "16x16", "32x32")}
            if self.mode == "cloud":
                return {"self": f"{self.base}/rest/api/2/user?accountId={u.account_id}", "accountId": u.account_id,
                        "avatarUrls": avatars, "displayName": u.name, "active": True,
                        "timeZone": self.w.jira_tz.key, "accountType": "atlassian"}
            return {"self": f"{self.base}/rest/api/2/user?username={u.login}", "name": u.login,
                    "key": f"JIRAUSER{10000 + n}", "emailAddress": u.email, "avatarUrls": avatars,
                    "displayName": u.name, "active": True, "timeZone": self.w.jira_tz.key}
        return self._cached(f"user:{n}", build)

    def component(self, team: str) -> dict[str, Any]:
        cid = COMPONENT_IDS[team]
        return self._cached(f"comp:{team}", lambda: {
            "self": f"{self.base}/rest/api/2/component/{cid}", "id": cid, "name": team})

    def resolution(self, i: JiraIssue) -> dict[str, Any] | None:
        if i.resolved is None:
            return None
        rid, name, desc = RESOLUTIONS.get(i.status, RESOLUTIONS[DONE])
        return {"self": f"{self.base}/rest/api/2/resolution/{rid}", "id": rid, "description": desc, "name": name}

    def sprint(self, sid: int) -> Any:
        if self._sprint_version != self.w.version:  # sprint states change only when the world does
            self._sprints, self._sprint_version = {}, self.w.version
        if sid not in self._sprints:
            self._sprints[sid] = self._sprint(sid)
        return self._sprints[sid]

    def _sprint(self, sid: int) -> Any:
        s = self.w.sprint_by_id[sid]
        iso = lambda ms: None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime(  # noqa: E731
            "%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        if self.mode == "cloud":
            out = {"id": s.id, "name": s.name, "state": s.state, "boardId": s.board, "goal": "",
                   "startDate": iso(s.start), "endDate": iso(s.end)}
            if s.complete is not None:
                out["completeDate"] = iso(s.complete)
            return out
        return (f"com.atlassian.greenhopper.service.sprint.Sprint@{s.id * 7919:x}[id={s.id},rapidViewId={s.board},"
                f"state={s.state.upper()},name={s.name},startDate={iso(s.start)},endDate={iso(s.end)},"
                f"completeDate={iso(s.complete) if s.complete else '<null>'},activatedDate={iso(s.start)},"
                f"sequence={s.id},goal=<null>,autoStartStop=false]")

    # -- issues ------------------------------------------------------------------------------------------
    def _getters(self) -> dict[str, Callable[[JiraIssue], Any]]:
        ids = self.ids
        g: dict[str, Callable[[JiraIssue], Any]] = {
            "summary": lambda i: i.summary,
            "description": lambda i: (i.fields or {}).get("description"),
            "issuetype": lambda i: self.issuetype(i.type),
            "project": lambda i: self.project(i.project),
            "status": lambda i: self.status(i.status),
            "statuscategorychangedate": lambda i: self.t(i.resolved or i.started or i.created),
            "priority": lambda i: self.priority(i.priority),
            "assignee": lambda i: self.user(i.assignee),
            "reporter": lambda i: self.user(i.assignee if i.assignee is not None else self.w.bot),
            "creator": lambda i: self.user(i.assignee if i.assignee is not None else self.w.bot),
            "created": lambda i: self.t(i.created),
            "updated": lambda i: self.t(i.updated),
            "resolution": self.resolution,
            "resolutiondate": lambda i: self.t(i.resolved),
            "labels": lambda i: list(i.labels),
            "components": lambda i: [self.component(i.team)] if i.project != "OKR" else [],
            "fixVersions": lambda i: [],
            "duedate": lambda i: (i.fields or {}).get("duedate"),
            "subtasks": lambda i: [],
            ids["epic_link"]: lambda i: i.parent,
            ids["epic_name"]: lambda i: i.summary if i.type == "Epic" else None,
            ids["sprint"]: lambda i: [self.sprint(s) for s in i.sprints] or None,
            ids["rank"]: lambda i: f"0|i{i.id:05x}:",
            KR_PROGRESS: lambda i: (i.fields or {}).get(KR_PROGRESS),
            KR_STATUS: lambda i: (i.fields or {}).get(KR_STATUS),
            "comment": self.comment_page,
        }
        for fid in ids["points"]:
            g[fid] = self._points_getter(fid)
        if self.mode == "cloud":
            g["parent"] = self.parent
        return g

    def _points_getter(self, fid: str) -> Callable[[JiraIssue], Any]:
        own = lambda i: self.mode == "server" or POINTS_FIELD[i.project] == fid  # noqa: E731
        if fid != "customfield_10024":
            return lambda i: i.points if own(i) else (i.fields or {}).get(fid)

        def legacy(i: JiraIssue) -> Any:
            # the legacy float field sometimes holds a numeric string (seen in the recorded Cloud payloads: "-1")
            if own(i) and i.points is not None and i.id % 20 == 0:
                return f"{i.points:g}"
            return i.points if own(i) else (i.fields or {}).get(fid)
        return legacy

    def parent(self, i: JiraIssue) -> dict[str, Any] | None:
        if i.parent is None:
            return None
        p = self.w.jira_by_key[i.parent]
        return {"id": str(p.id), "key": p.key, "self": f"{self.base}/rest/api/2/issue/{p.id}",
                "fields": {"summary": p.summary, "status": self.status(p.status),
                           "priority": self.priority(p.priority), "issuetype": self.issuetype(p.type)}}

    def wanted(self, spec: Any, default: str) -> list[str]:
        """The `fields` parameter: ids, *all, *navigable, -id exclusions (unknown ids are ignored, like Jira)."""
        if spec is None or spec == "" or spec == []:
            spec = default
        items = [s.strip() for part in ([spec] if isinstance(spec, str) else spec) for s in str(part).split(",")]
        out: list[str] = []
        for s in items:
            if s in ("*all", "*navigable"):
                out += [f for f in self.all_fields if f not in out and (s == "*all" or f != "comment")]
            elif s and not s.startswith("-") and s in self.getters and s not in out:
                out.append(s)
        excluded = {s[1:] for s in items if s.startswith("-")}
        return [f for f in out if f not in excluded]

    def issue(self, i: JiraIssue, fields: list[str], api: str = "2", expand: str = "",
              properties: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,"
                               "versionedRepresentations", "id": str(i.id),
                               "self": f"{self.base}/rest/api/{api}/issue/{i.id}", "key": i.key}
        values: dict[str, Any] = {}
        for f in fields:
            if f == "parent" and i.parent is None:
                continue  # Cloud omits parent when there is none
            values[f] = self.getters[f](i)
        out["fields"] = values
        if properties:
            props = self.w.properties.get(i.key, {})
            out["properties"] = {k: props[k] for k in properties if k in props}
        if "changelog" in expand:
            histories = self.changelog(i)
            out["changelog"] = {"startAt": 0, "maxResults": len(histories), "total": len(histories),
                                "histories": histories}
        return out

    def changelog(self, i: JiraIssue) -> list[dict[str, Any]]:
        steps = []
        if i.started is not None:
            steps.append((i.started, TODO, 1))
        if i.status == IN_REVIEW and i.started is not None:
            steps.append((i.started + (i.updated - i.started) // 2, 1, IN_REVIEW))
        if i.resolved is not None:
            steps.append((i.resolved, 1, i.status))
        out = []
        for n, (at, frm, to) in enumerate(steps):
            items = [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": STATUSES[frm][0],
                      "fromString": STATUSES[frm][1], "to": STATUSES[to][0], "toString": STATUSES[to][1]}]
            if to in RESOLUTIONS:
                rid, name, _d = RESOLUTIONS[to]
                items.append({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution", "from": None,
                              "fromString": None, "to": rid, "toString": name})
            out.append({"id": str(i.id * 10 + n), "author": self.user(i.assignee if i.assignee is not None else
                                                                         self.w.bot),
                        "created": self.t(at), "items": items})
        return out

    def comment(self, c: Comment) -> dict[str, Any]:
        issue = self.w.jira_by_key[c.issue]
        out = {"self": f"{self.base}/rest/api/2/issue/{issue.id}/comment/{c.id}", "id": str(c.id),
               "author": self.user(c.author), "body": c.body, "updateAuthor": self.user(c.author),
               "created": self.t(c.created), "updated": self.t(c.updated)}
        if self.mode == "cloud":
            # Cloud's read-only flag: false for an internal comment (sd.public.comment {"internal": true})
            internal = (self.comment_properties.get(c.id, {}).get("sd.public.comment") or {}).get("internal")
            out["jsdPublic"] = internal is not True
        return out

    def comment_page(self, i: JiraIssue) -> dict[str, Any]:
        comments = [self.comment(c) for c in self.w.comments.get(i.key, [])]
        return {"comments": comments, "self": f"{self.base}/rest/api/2/issue/{i.id}/comment",
                "maxResults": len(comments), "total": len(comments), "startAt": 0}
