"""Seed ServiceNow and PagerDuty: incidents across both quarters, resolved, closed and open, deterministic."""

from __future__ import annotations

import math
import random

from .model import BOT, DAY_MS, HOUR_MS, MIN_MS, PEOPLE, TEAMS, PdIncident, SnIncident, hexid, pd_id, pick, spread
from .world import World

SN_SERVICES = (("Core Network", 0.30, "Network", ("core-rtr-01", "core-sw-02")),
               ("Email", 0.25, "Messaging", ("mail-exch-01", "mail-relay-02")),
               ("Payments API", 0.45, "Payments SRE", ("payments-api-prod", "payments-db-prod")))
SN_GROUPS = ("Network", "Messaging", "Payments SRE", "Service Desk")
SN_PRIORITY = ((1, 0.05, 4), (2, 0.15, 12), (3, 0.45, 48), (4, 0.35, 120))  # (priority, share, mean hours)
SLA_HOURS = {1: 8, 2: 24, 3: 72, 4: 168}
SN_SYMPTOMS = ("outage", "degraded performance", "errors reported", "timeouts", "cannot connect")
IMPACT_URGENCY = {1: (("1", "1"),), 2: (("1", "2"), ("2", "1")), 3: (("2", "2"), ("1", "3"), ("3", "1")),
                  4: (("2", "3"), ("3", "2"))}
PD_SYMPTOMS = ("high error rate", "latency above SLO", "health check failing", "disk almost full", "queue backlog")
PD_SERVICES = (("Payments API", "payments"), ("Web Frontend", "mobile"), ("Core Network", "platform"))


# -- ServiceNow ---------------------------------------------------------------------------------------------
_SYS_IDS = {("group", g): hexid("group", g) for g in SN_GROUPS}
_SYS_IDS.update({("service", s[0]): hexid("service", s[0]) for s in SN_SERVICES})
_SYS_IDS.update({("ci", ci): hexid("ci", ci) for s in SN_SERVICES for ci in s[3]})
_SYS_IDS.update({("sn-user", login): hexid("sn-user", login) for _n, login, _t in PEOPLE + (BOT,)})


def build_servicenow(w: World, rng: random.Random) -> None:
    for name in SN_GROUPS:
        w.sn_refs[hexid("group", name)] = ("sys_user_group", name)
    for name, _share, _group, cis in SN_SERVICES:
        w.sn_refs[hexid("service", name)] = ("cmdb_ci_service", name)
        for ci in cis:
            w.sn_refs[hexid("ci", ci)] = ("cmdb_ci", ci)
    for u in w.users:
        w.sn_refs[hexid("sn-user", u.login)] = ("sys_user", u.name)
    for t in spread(rng, max(30, w.scale // 5), w.start_ms, w.now_ms, w.current_quarter_ms, boost=0.9):
        add_sn_incident(w, rng, t)
    # whatever the dice said, the newest incidents include an open one and a resolved-not-closed one
    if not any(x.state in ("1", "2", "3") for x in w.sn):
        x = w.sn[-1]
        x.state, x.resolved, x.closed, x.close_code = "2", None, None, ""
        x.made_sla = w.now_ms - x.opened <= SLA_HOURS[int(x.priority)] * HOUR_MS
    if not any(x.state == "6" for x in w.sn):
        x = next(x for x in reversed(w.sn) if x.state == "7")
        x.state, x.closed, x.updated = "6", None, x.resolved


def add_sn_incident(w: World, rng: random.Random, opened: int) -> SnIncident:
    n = w.next_id("sn_number", 10001)
    x = SnIncident(hexid("incident", w.seed, n), f"INC{n:07d}", "", opened)
    r, acc = rng.random(), 0.0
    for name, share, group, cis in SN_SERVICES:
        acc += share
        if r < acc or name == SN_SERVICES[-1][0]:
            break
    x.service, x.ci = _SYS_IDS["service", name], _SYS_IDS["ci", pick(rng, cis)]
    x.group = _SYS_IDS["group", group if rng.random() < 0.8 else "Service Desk"]
    x.short_description = f"{name}: {pick(rng, SN_SYMPTOMS)}"
    x.category = {"Core Network": "network", "Email": "inquiry", "Payments API": "software"}[name]
    r, acc = rng.random(), 0.0
    for prio, share, mean_h in SN_PRIORITY:
        acc += share
        if r < acc:
            break
    x.priority = str(prio)
    x.impact, x.urgency = pick(rng, IMPACT_URGENCY[prio])  # priority = the impact x urgency matrix
    x.severity = x.impact
    x.reassign = pick(rng, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3))
    x.assigned_to = _SYS_IDS["sn-user", PEOPLE[int(rng.random() * len(PEOPLE))][1]]
    x.caller = _SYS_IDS["sn-user", PEOPLE[int(rng.random() * len(PEOPLE))][1]]
    x.made_sla = True
    x.updated = opened + 5_000
    x.mod_count = 2 + x.reassign
    if rng.random() < 0.06:  # waiting on a vendor or a change window: open for weeks
        mean_h = 30 * 24
    resolve_in = int(rng.expovariate(1 / (mean_h * HOUR_MS)))
    if rng.random() < 0.03 and opened + HOUR_MS <= w.now_ms:
        x.state, x.closed = "8", opened + HOUR_MS  # canceled
        x.updated = x.closed
    elif opened + resolve_in <= w.now_ms:
        resolve_sn(w, x, opened + resolve_in, rng)
    else:
        x.state = "1" if w.now_ms - opened < 2 * HOUR_MS else "3" if rng.random() < 0.15 else "2"
        x.made_sla = w.now_ms - opened <= SLA_HOURS[prio] * HOUR_MS
    w.sn.append(x)
    w.sn_by_id[x.sys_id] = x
    return x


def resolve_sn(w: World, x: SnIncident, at: int, rng: random.Random) -> None:
    x.resolved, x.state, x.close_code = at, "6", "Solved (Permanently)"
    x.made_sla = at - x.opened <= SLA_HOURS[int(x.priority)] * HOUR_MS
    x.updated, x.mod_count = at, x.mod_count + 2
    if at + 5 * DAY_MS <= w.now_ms:  # auto-closed five days after resolution
        x.state, x.closed, x.updated = "7", at + 5 * DAY_MS, at + 5 * DAY_MS
        x.mod_count += 1


# -- PagerDuty ----------------------------------------------------------------------------------------------
def build_pagerduty(w: World, rng: random.Random) -> None:
    for team in TEAMS:
        w.pd_teams[pd_id("P", "team", team, n=6)] = team.capitalize()
    for name, team in PD_SERVICES:
        policy = pd_id("P", "policy", name, n=6)
        w.pd_policies[policy] = f"{name} escalation"
        w.pd_services[pd_id("P", "service", name, n=6)] = (name, pd_id("P", "team", team, n=6), policy)
    for p in ("P1", "P2", "P3"):
        w.pd_priorities[p] = pd_id("P", "priority", p, n=6)
    for t in spread(rng, max(20, w.scale // 5), w.start_ms, w.now_ms, w.current_quarter_ms, boost=0.9):
        add_pd_incident(w, rng, t)
    # whatever the dice said, the newest incidents include a triggered and an acknowledged one
    if not any(x.status == "triggered" for x in w.pd):
        _reopen_pd(w.pd[-1], acknowledged=False)
    if not any(x.status == "acknowledged" for x in w.pd):
        _reopen_pd(next(x for x in reversed(w.pd) if x.status == "resolved"), acknowledged=True)


def _reopen_pd(x: PdIncident, acknowledged: bool) -> None:
    x.log = [e for e in x.log if e[0] != "resolve_log_entry" and (acknowledged or e[0] != "acknowledge_log_entry")]
    x.resolved = None
    if acknowledged and x.acked is None:
        ack_incident(x, x.created + 5 * MIN_MS)
    x.acked = x.acked if acknowledged else None
    x.status = "acknowledged" if acknowledged else "triggered"
    x.updated = x.acked if acknowledged else x.created
    x.log.sort(key=lambda e: e[1])


def add_pd_incident(w: World, rng: random.Random, created: int) -> PdIncident:
    number = w.next_id("pd_number", 1)
    service = pick(rng, tuple(w.pd_services))
    x = PdIncident(pd_id("Q", w.seed, "incident", number), number,
                   f"{w.pd_services[service][0]}: {pick(rng, PD_SYMPTOMS)}",
                   service, created)
    x.urgency = "high" if rng.random() < 0.4 else "low"
    r = rng.random()
    x.priority = "P1" if r < 0.1 else "P2" if r < 0.35 else "P3" if r < 0.75 else None
    x.assignee = rng.randrange(len(PEOPLE))
    log = x.log
    log.append(("trigger_log_entry", created, None))
    log.append(("assign_log_entry", created, None))
    log.append(("notify_log_entry", created + 10_000, None))
    high = x.urgency == "high"
    ack = created + int(rng.expovariate(1 / ((8 if high else 45) * MIN_MS)))
    res = ack + int(rng.expovariate(1 / ((2 if high else 10) * HOUR_MS * (40 if rng.random() < 0.04 else 1))))
    if rng.random() < 0.2:
        log.append(("escalate_log_entry", created + 5 * MIN_MS, None))
    if rng.random() < 0.1:  # resolved by the integration without an acknowledgement
        ack = math.inf
    if ack <= w.now_ms:
        ack_incident(x, int(ack))
    if res <= w.now_ms:
        resolve_pd(x, res)
    log.sort(key=lambda e: e[1])
    w.pd.append(x)
    w.pd_by_id[x.id] = x
    return x


def ack_incident(x: PdIncident, at: int) -> None:
    x.acked, x.status, x.updated = at, "acknowledged", at
    x.log.append(("acknowledge_log_entry", at, x.assignee))


def resolve_pd(x: PdIncident, at: int) -> None:
    x.resolved, x.status, x.updated = at, "resolved", at
    x.log.append(("resolve_log_entry", at, x.assignee if x.acked else None))
