"""A JQL subset: parse a query into a predicate over JiraIssue and an ORDER BY key, with Jira's error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from .model import DAY_MS, HOUR_MS, ISSUE_TYPES, MIN_MS, PRIORITIES, PROJECTS, STATUS_CATEGORIES, STATUSES, JiraIssue

Pred = Callable[[JiraIssue], bool]
OPERATORS = ("=", "!=", "<", ">", "<=", ">=", "~", "!~", "IN", "NOT IN", "IS", "IS NOT")
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>!=|>=|<=|!~|=|>|<|~)'
                    r'|(?P<punct>[(),])|(?P<word>[^\s"\'(),=!<>~]+))')
EQ_KINDS = {"project", "key", "parent", "epic", "labels", "sprint", "type", "status", "category", "resolution",
            "component", "priority", "assignee"}
DATE_FIELDS = {"created": "created", "createddate": "created", "updated": "updated", "updateddate": "updated",
               "resolved": "resolved", "resolutiondate": "resolved"}
NAMES = {"project": "project", "key": "key", "issuekey": "key", "id": "key", "parent": "parent",
         "epic link": "epic", "labels": "labels", "sprint": "sprint", "issuetype": "type", "type": "type",
         "status": "status", "statuscategory": "category", "resolution": "resolution", "component": "component",
         "priority": "priority", "assignee": "assignee", "summary": "summary", "text": "summary"}
SORTS = {"created", "createddate", "updated", "updateddate", "resolved", "resolutiondate", "key", "issuekey", "id",
         "priority"}
_DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
_RELATIVE = re.compile(r"^([+-]?)(\d+)([mhdw])$")


class JqlError(ValueError):
    """400 with Jira's {"errorMessages": [...]} shape."""


@dataclass
class JqlContext:
    world: Any
    mode: str  # cloud | server
    epic_clause: str  # cf[10014] (Cloud) or cf[10101] (Data Center)
    sprint_clause: str


@dataclass
class Query:
    where: Pred | None
    order: list[tuple[str, bool]] = field(default_factory=list)  # (sort field, descending)

    def sort_key(self) -> list[tuple[Callable[[JiraIssue], Any], bool]]:
        return [(_SORT_KEYS[name], desc) for name, desc in self.order]


_SORT_KEYS: dict[str, Callable[[JiraIssue], Any]] = {
    "created": lambda i: i.created, "updated": lambda i: i.updated,
    "resolved": lambda i: i.resolved if i.resolved is not None else float("inf"),
    "key": lambda i: (i.project, i.num), "id": lambda i: i.id, "priority": lambda i: -i.priority,
}


class _Parser:
    def __init__(self, text: str, ctx: JqlContext):
        self.text, self.ctx = text, ctx
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self.error(f"The character '{text[pos]}' is a reserved JQL character", pos)
            kind = m.lastgroup
            value = m.group(kind)
            if kind == "str":
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            self.tokens.append((kind, value, m.start(kind)))
            pos = m.end()
        self.i = 0

    # -- token helpers ------------------------------------------------------------------------------------
    def error(self, message: str, pos: int | None = None) -> JqlError:
        if pos is None:
            pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return JqlError(f"Error in the JQL Query: {message}. (line 1, character {pos + 1})")

    def peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def word(self, offset: int = 0) -> str | None:
        t = self.peek(offset)
        return t[1].upper() if t and t[0] == "word" else None

    def got(self) -> str:
        t = self.peek()
        return "the end of the query" if t is None else f"'{t[1]}'"

    def take(self) -> tuple[str, str, int]:
        t = self.peek()
        if t is None:
            raise self.error("Expecting a field name but got the end of the query")
        self.i += 1
        return t

    # -- grammar ------------------------------------------------------------------------------------------
    def parse(self) -> Query:
        where = None
        if self.peek() is not None and not (self.word() == "ORDER" and self.word(1) == "BY"):
            where = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.word() == "ORDER":
            self.i += 1
            if self.word() != "BY":
                raise self.error(f"Expecting 'BY' but got {self.got()}")
            self.i += 1
            while True:
                t = self.take()
                name = t[1].lower()
                if name not in SORTS:
                    raise JqlError(f"Not able to sort using field '{t[1]}'.")
                desc = False
                if self.word() in ("ASC", "DESC"):
                    desc = self.take()[1].upper() == "DESC"
                order.append(({"createddate": "created", "updateddate": "updated", "resolutiondate": "resolved",
                               "issuekey": "key"}.get(name, name), desc))
                if self.peek() and self.peek()[1] == ",":
                    self.i += 1
                    continue
                break
            if len(order) > 7:
                raise JqlError("The ORDER BY clause of a search can have at most 7 fields.")
        if self.peek() is not None:
            raise self.error(f"Expecting either 'OR' or 'AND' but got {self.got()}")
        return Query(where, order)

    def or_expr(self) -> Pred:
        parts = [self.and_expr()]
        while self.word() == "OR":
            self.i += 1
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda i: any(p(i) for p in parts))

    def and_expr(self) -> Pred:
        parts = [self.unary()]
        while self.word() == "AND":
            self.i += 1
            parts.append(self.unary())
        if len(parts) == 2:
            a, b = parts
            return lambda i: a(i) and b(i)
        return parts[0] if len(parts) == 1 else (lambda i: all(p(i) for p in parts))

    def unary(self) -> Pred:
        if self.word() == "NOT":
            self.i += 1
            inner = self.unary()
            return lambda i: not inner(i)
        t = self.peek()
        if t and t[1] == "(" and t[0] == "punct":
            self.i += 1
            inner = self.or_expr()
            t = self.peek()
            if not t or t[1] != ")":
                raise self.error(f"Expecting ')' but got {self.got()}")
            self.i += 1
            return inner
        return self.clause()

    def clause(self) -> Pred:
        t = self.take()
        if t[0] not in ("word", "str") or t[1].upper() in ("AND", "OR", "ORDER"):
            raise self.error(f"Expecting a field name but got '{t[1]}'", t[2])
        field_name = t[1]
        op = self.operator()
        if op in ("IS", "IS NOT"):
            t = self.take()
            if t[1].upper() not in ("EMPTY", "NULL"):
                raise self.error(f"Expecting 'EMPTY' or 'NULL' but got '{t[1]}'", t[2])
            return _compile(self.ctx, field_name, op, None)
        if op in ("IN", "NOT IN"):
            t = self.peek()
            if t and t[0] == "word" and self.peek(1) and self.peek(1)[1] == "(" and t[1].upper() not in ("EMPTY",):
                return _compile(self.ctx, field_name, op, self.function())
            if not t or t[1] != "(":
                raise self.error(f"Expecting '(' but got {self.got()}")
            self.i += 1
            values = []
            while True:
                values.append(self.value())
                t = self.take()
                if t[1] == ")":
                    break
                if t[1] != ",":
                    raise self.error(f"Expecting ',' or ')' but got '{t[1]}'", t[2])
            return _compile(self.ctx, field_name, op, values)
        return _compile(self.ctx, field_name, op, [self.value()])

    def operator(self) -> str:
        t = self.peek()
        if t and t[0] == "op":
            self.i += 1
            return t[1]
        w = self.word()
        if w in ("IN", "IS"):
            self.i += 1
            if w == "IS" and self.word() == "NOT":
                self.i += 1
                return "IS NOT"
            return w
        if w == "NOT" and self.word(1) == "IN":
            self.i += 2
            return "NOT IN"
        raise self.error(f"Expecting operator but got {self.got()}. The valid operators are "
                         + ", ".join(f"'{o}'" for o in OPERATORS[:-1]) + f" and '{OPERATORS[-1]}'")

    def value(self) -> Any:
        t = self.peek()
        if t is None or t[0] in ("op",) or (t[0] == "punct"):
            raise self.error(f"Expecting either a value, list or function but got {self.got()}")
        if t[0] == "word" and t[1].upper() in ("AND", "OR", "ORDER", "IN", "NOT", "IS"):
            raise self.error(f"Expecting either a value, list or function but got '{t[1]}'. You must surround "
                             f"'{t[1]}' in quotation marks to use it as a value")
        if t[0] == "word" and self.peek(1) and self.peek(1)[1] == "(":
            return self.function()
        self.i += 1
        return t[1]

    def function(self) -> tuple[str, ...]:
        name = self.take()[1]
        self.i += 1  # (
        args = []
        while self.peek() and self.peek()[1] != ")":
            t = self.take()
            if t[1] != ",":
                args.append(t[1])
        if not self.peek():
            raise self.error("Expecting ')' but got the end of the query")
        self.i += 1
        return (name.lower() + "()", *args)


def parse(text: str, ctx: JqlContext) -> Query:
    return _Parser(text or "", ctx).parse()


# -- clause compilation --------------------------------------------------------------------------------------
def _kind(ctx: JqlContext, name: str) -> str:
    low = name.lower()
    if low in (ctx.epic_clause, "epic link"):
        return "epic"
    if low == ctx.sprint_clause:
        return "sprint"
    if low in DATE_FIELDS:
        return "date"
    if low in NAMES:
        return NAMES[low]
    raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")


def _compile(ctx: JqlContext, name: str, op: str, values: Any) -> Pred:
    kind = _kind(ctx, name)
    negate = op in ("!=", "NOT IN", "IS NOT", "!~")
    if op in ("IS", "IS NOT"):
        if kind == "date":
            attr = DATE_FIELDS[name.lower()]
            empty = lambda i: getattr(i, attr) is None  # noqa: E731
        elif kind in _EMPTY:
            empty = _EMPTY[kind]
        else:
            raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
        return (lambda i: not empty(i)) if negate else empty
    if kind == "date":
        return _date_clause(ctx, name, op, values)
    if kind == "summary":
        if op not in ("~", "!~"):
            raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
        needle = str(values[0]).lower()
        return (lambda i: needle not in i.summary.lower()) if negate else (lambda i: needle in i.summary.lower())
    if op not in ("=", "!=", "IN", "NOT IN"):
        raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
    func = values if isinstance(values, tuple) else next((v for v in values if isinstance(v, tuple)), None)
    if func is not None:
        wanted = _function(ctx, name, kind, func[0])
    else:
        wanted = _resolve(ctx, name, kind, values)
    get = _GETTERS[kind]
    if kind in ("labels", "sprint", "component"):
        pred = lambda i: any(v in wanted for v in get(i))  # noqa: E731
    else:
        pred = lambda i: get(i) in wanted  # noqa: E731
    if not negate:
        return pred
    empty = _EMPTY.get(kind)
    if empty is None:
        return lambda i: not pred(i)
    return lambda i: not pred(i) and not empty(i)  # like Jira, != never matches an EMPTY value


def _function(ctx: JqlContext, name: str, kind: str, fn: str) -> set:
    if kind == "sprint":
        states = {"opensprints()": ("active", "future"), "closedsprints()": ("closed",),
                  "futuresprints()": ("future",)}.get(fn)
        if states is not None:
            return {s.id for s in ctx.world.sprints if s.state in states}
    if kind == "assignee" and fn == "currentuser()":
        return {ctx.world.bot}
    raise JqlError(f"Unable to find JQL function '{fn}'.")


_GETTERS: dict[str, Callable[[JiraIssue], Any]] = {
    "project": lambda i: i.project, "key": lambda i: i.id, "parent": lambda i: i.parent, "epic": lambda i: i.parent,
    "labels": lambda i: [x.lower() for x in i.labels], "sprint": lambda i: i.sprints, "type": lambda i: i.type,
    "status": lambda i: i.status, "category": lambda i: STATUSES[i.status][2],
    "resolution": lambda i: i.status if i.resolved is not None else None,
    "component": lambda i: (i.team,) if i.project != "OKR" else (),
    "priority": lambda i: i.priority, "assignee": lambda i: i.assignee,
}
_EMPTY: dict[str, Callable[[JiraIssue], bool]] = {
    "labels": lambda i: not i.labels, "sprint": lambda i: not i.sprints, "parent": lambda i: i.parent is None,
    "epic": lambda i: i.parent is None, "resolution": lambda i: i.resolved is None,
    "assignee": lambda i: i.assignee is None,
}


def _missing(name: str, value: Any) -> JqlError:
    return JqlError(f"The value '{value}' does not exist for the field '{name}'.")


def _resolve(ctx: JqlContext, name: str, kind: str, values: list[str]) -> set:
    w = ctx.world
    out: set = set()
    for raw in values:
        v = str(raw)
        low = v.lower()
        if kind == "project":
            hit = [k for k, (pid, pname, _t) in PROJECTS.items() if low in (k.lower(), pname.lower(), pid)]
            if not hit:
                raise _missing(name, v)
            out.update(hit)
        elif kind in ("key", "parent", "epic"):
            issue = w.jira_issue(v)
            if issue is None:
                raise JqlError(f"An issue with key '{v}' does not exist for field '{name}'.")
            if kind == "key":
                out.add(issue.id)
            elif kind == "epic" or ctx.mode == "cloud":
                out.add(issue.key)
            # Data Center: `parent` means a sub-task's parent; epics link their children through Epic Link
        elif kind == "labels":
            out.add(low)
        elif kind == "sprint":
            ids = [s.id for s in w.sprints if (v.isdigit() and s.id == int(v)) or s.name.lower() == low]
            if not ids:
                raise _missing(name, v)
            out.update(ids)
        elif kind == "type":
            hit = [k for k, t in ISSUE_TYPES.items() if low in (k.lower(), t[0])]
            if not hit:
                raise _missing(name, v)
            out.update(hit)
        elif kind == "status":
            hit = [n for n, s in enumerate(STATUSES) if low in (s[1].lower(), s[0])]
            if not hit:
                raise _missing(name, v)
            out.update(hit)
        elif kind == "category":
            hit = [k for k, c in STATUS_CATEGORIES.items() if low in (k, c[3].lower(), str(c[0]))]
            if not hit:
                raise _missing(name, v)
            out.update(hit)
        elif kind == "resolution":
            if low == "unresolved":
                out.add(None)
            else:
                hit = [n for n, s in enumerate(STATUSES) if s[2] == "done" and s[1].lower() == low]
                if not hit:
                    raise _missing(name, v)
                out.update(hit)
        elif kind == "component":
            out.add(low)
        elif kind == "priority":
            hit = [n for n, p in enumerate(PRIORITIES) if low in (p[1].lower(), p[0])]
            if not hit:
                raise _missing(name, v)
            out.update(hit)
        elif kind == "assignee":
            hit = [u.index for u in w.users if low in (u.account_id, u.login, u.name.lower(), u.email)]
            if not hit:
                raise JqlError(f"The value '{v}' does not exist for the field '{name}'.")
            out.update(hit)
    return out


def _date_clause(ctx: JqlContext, name: str, op: str, values: list[Any]) -> Pred:
    if op not in ("=", "!=", "<", ">", "<=", ">="):
        raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
    attr = DATE_FIELDS[name.lower()]
    at = _date_value(ctx, name, values[0])
    getter = {"created": lambda i: i.created, "updated": lambda i: i.updated, "resolved": lambda i: i.resolved}[attr]
    cmp = {"=": lambda a: a == at, "!=": lambda a: a != at, "<": lambda a: a < at, ">": lambda a: a > at,
           "<=": lambda a: a <= at, ">=": lambda a: a >= at}[op]

    def pred(i: JiraIssue) -> bool:
        a = getter(i)
        return a is not None and cmp(a)

    return pred


def _date_value(ctx: JqlContext, name: str, value: Any) -> int:
    """Epoch millis, a relative period (-1d, -15m), now(), or a date literal read in the user's time zone."""
    now = ctx.world.clock()
    if isinstance(value, tuple):
        if value[0] == "now()":
            return now
        raise JqlError(f"Unable to find JQL function '{value[0]}'.")
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = _RELATIVE.match(text)
    if m:
        delta = int(m[2]) * {"m": MIN_MS, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}[m[3]]
        return now - delta if m[1] == "-" else now + delta
    for fmt in _DATE_FORMATS:
        try:
            local = datetime.strptime(text, fmt).replace(tzinfo=ctx.world.jira_tz)
        except ValueError:
            continue
        return int(local.timestamp() * 1000)
    raise JqlError(f"Date value '{text}' for field '{name}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
                   "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")
