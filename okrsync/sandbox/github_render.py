"""GitHub REST payload shapes: issues, pull requests, deployments, statuses, releases, workflow runs, commits."""

from __future__ import annotations

import base64
from typing import Any, Callable

from .model import Commit, Deployment, GhItem, Release, WorkflowRun, default_body, gh_time, sha40
from .world import DEPLOY_WORKFLOW, Repo

DOCS = "https://docs.github.com/rest"
_REACTIONS = {"total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0, "heart": 0, "rocket": 0,
              "eyes": 0}


def node_id(type: str, id: int) -> str:
    return base64.b64encode(f"{len(type):02d}:{type}{id}".encode()).decode()


class GhRenderer:
    def __init__(self, world: Any, base_url: Callable[[], str]):
        self.w, self._base = world, base_url
        self._users: dict[int, dict[str, Any]] = {}
        self._repos: dict[tuple[str, int], dict[str, Any]] = {}

    @property
    def api(self) -> str:
        return self._base()

    def html(self, path: str) -> str:
        return f"{self._base()}/{path}"  # like GitHub Enterprise Server: the web UI shares the host

    def user(self, n: int | None) -> dict[str, Any] | None:
        if n is None:
            return None
        if n not in self._users:
            u = self.w.users[n]
            uid = 1_000_000 + n
            base = f"{self.api}/users/{u.login}"
            self._users[n] = {
                "login": u.login, "id": uid, "node_id": node_id("User", uid),
                "avatar_url": f"https://avatars.example/u/{uid}?v=4", "gravatar_id": "", "url": base,
                "html_url": self.html(u.login), "followers_url": f"{base}/followers",
                "following_url": f"{base}/following{{/other_user}}", "gists_url": f"{base}/gists{{/gist_id}}",
                "starred_url": f"{base}/starred{{/owner}}{{/repo}}", "subscriptions_url": f"{base}/subscriptions",
                "organizations_url": f"{base}/orgs", "repos_url": f"{base}/repos",
                "events_url": f"{base}/events{{/privacy}}", "received_events_url": f"{base}/received_events",
                "type": "Bot" if n == self.w.bot else "User", "user_view_type": "public", "site_admin": False}
        return self._users[n]

    def org(self) -> dict[str, Any]:
        return {"login": "acme", "id": 900001, "node_id": node_id("Organization", 900001),
                "avatar_url": "https://avatars.example/u/900001?v=4", "gravatar_id": "",
                "url": f"{self.api}/users/acme",
                "html_url": self.html("acme"), "type": "Organization", "user_view_type": "public", "site_admin": False}

    def repo(self, r: Repo) -> dict[str, Any]:
        key = (r.name, self.w.version)
        if key not in self._repos:  # embedded in every PR's head/base: build once per world version
            self._repos = {k: v for k, v in self._repos.items() if k[1] == self.w.version}
            self._repos[key] = self._repo(r)
        return self._repos[key]

    def _repo(self, r: Repo) -> dict[str, Any]:
        url = f"{self.api}/repos/{r.name}"
        open_count = sum(1 for it in r.items if it.state == "open")
        return {
            "id": r.id, "node_id": node_id("Repository", r.id), "name": r.name.split("/")[1], "full_name": r.name,
            "private": True, "owner": self.org(), "html_url": self.html(r.name), "description": f"Acme {r.name}",
            "fork": False, "url": url, "issues_url": f"{url}/issues{{/number}}", "pulls_url": f"{url}/pulls{{/number}}",
            "deployments_url": f"{url}/deployments", "releases_url": f"{url}/releases{{/id}}",
            "compare_url": f"{url}/compare/{{base}}...{{head}}",
            "created_at": gh_time(self.w.start_ms - 400 * 86_400_000), "updated_at": gh_time(self.w.now_ms),
            "pushed_at": gh_time(r.commits[-1].time if r.commits else self.w.start_ms), "default_branch": "main",
            "open_issues_count": open_count, "open_issues": open_count, "visibility": "private", "archived": False,
            "disabled": False, "has_issues": True, "has_projects": True, "has_wiki": False, "topics": [],
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}}

    def label(self, r: Repo, name: str) -> dict[str, Any]:
        lid = r.label_id(name)
        return {"id": lid, "node_id": node_id("Label", lid), "url": f"{self.api}/repos/{r.name}/labels/{name}",
                "name": name, "color": f"{lid * 2654435761 % 0xFFFFFF:06x}", "default": name in ("bug", "enhancement"),
                "description": None}

    # -- issues and pulls --------------------------------------------------------------------------------
    def issue(self, r: Repo, it: GhItem) -> dict[str, Any]:
        url = f"{self.api}/repos/{r.name}"
        n = it.number
        out: dict[str, Any] = {
            "url": f"{url}/issues/{n}", "repository_url": url, "labels_url": f"{url}/issues/{n}/labels{{/name}}",
            "comments_url": f"{url}/issues/{n}/comments", "events_url": f"{url}/issues/{n}/events",
            "html_url": self.html(f"{r.name}/{'pull' if it.is_pr else 'issues'}/{n}"), "id": it.id,
            "node_id": node_id("PullRequest" if it.is_pr else "Issue", it.id), "number": n, "title": it.title,
            "user": self.user(it.user), "labels": [self.label(r, x) for x in it.labels], "state": it.state,
            "locked": False, "assignee": self.user(it.assignee),
            "assignees": [self.user(it.assignee)] if it.assignee is not None else [], "milestone": None,
            "comments": len(it.comments), "created_at": gh_time(it.created), "updated_at": gh_time(it.updated),
            "closed_at": gh_time(it.closed), "author_association": "MEMBER", "type": None,
            "active_lock_reason": None,
            "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
            "body": it.body if it.body is not None else default_body(it),
            "closed_by": self.user(it.user) if it.closed else None,
            "reactions": dict(_REACTIONS, url=f"{url}/issues/{n}/reactions"),
            "timeline_url": f"{url}/issues/{n}/timeline", "performed_via_github_app": None,
            "state_reason": it.state_reason,
        }
        if it.is_pr:
            out["draft"] = it.draft
            out["pull_request"] = {"url": f"{url}/pulls/{n}", "html_url": self.html(f"{r.name}/pull/{n}"),
                                   "diff_url": self.html(f"{r.name}/pull/{n}.diff"),
                                   "patch_url": self.html(f"{r.name}/pull/{n}.patch"), "merged_at": gh_time(it.merged)}
        return out

    def _ref(self, r: Repo, ref: str, sha: str) -> dict[str, Any]:
        return {"label": f"acme:{ref}", "ref": ref, "sha": sha, "user": self.org(), "repo": self.repo(r)}

    def pull(self, r: Repo, it: GhItem) -> dict[str, Any]:
        url = f"{self.api}/repos/{r.name}"
        n = it.number
        head_sha = it.head_sha or sha40(r.name, "head", n)
        base_sha = r.head_at(it.merged or it.updated).sha if r.commits else sha40(r.name, "root")
        html = self.html(f"{r.name}/pull/{n}")
        return {
            "url": f"{url}/pulls/{n}", "id": it.id, "node_id": node_id("PullRequest", it.id), "html_url": html,
            "diff_url": f"{html}.diff", "patch_url": f"{html}.patch", "issue_url": f"{url}/issues/{n}", "number": n,
            "state": it.state, "locked": False, "title": it.title, "user": self.user(it.user),
            "body": it.body if it.body is not None else default_body(it), "created_at": gh_time(it.created),
            "updated_at": gh_time(it.updated), "closed_at": gh_time(it.closed), "merged_at": gh_time(it.merged),
            # GitHub reports a test-merge commit for unmerged PRs: only merged_at says whether it merged
            "merge_commit_sha": it.merge_sha or sha40(r.name, "test-merge", n),
            "assignee": self.user(it.assignee),
            "assignees": [self.user(it.assignee)] if it.assignee is not None else [], "requested_reviewers": [],
            "requested_teams": [], "labels": [self.label(r, x) for x in it.labels],
            "milestone": None, "draft": it.draft, "commits_url": f"{url}/pulls/{n}/commits",
            "review_comments_url": f"{url}/pulls/{n}/comments",
            "review_comment_url": f"{url}/pulls/comments{{/number}}", "comments_url": f"{url}/issues/{n}/comments",
            "statuses_url": f"{url}/statuses/{head_sha}",
            "head": self._ref(r, it.head_ref or f"feature-{n}", head_sha), "base": self._ref(r, "main", base_sha),
            "_links": {"self": {"href": f"{url}/pulls/{n}"}, "html": {"href": html},
                       "issue": {"href": f"{url}/issues/{n}"}, "comments": {"href": f"{url}/issues/{n}/comments"},
                       "review_comments": {"href": f"{url}/pulls/{n}/comments"},
                       "review_comment": {"href": f"{url}/pulls/comments{{/number}}"},
                       "commits": {"href": f"{url}/pulls/{n}/commits"},
                       "statuses": {"href": f"{url}/statuses/{head_sha}"}},
            "author_association": "MEMBER", "auto_merge": None, "active_lock_reason": None,
        }

    def comment(self, r: Repo, it: GhItem, c: tuple[int, int, str, int, int]) -> dict[str, Any]:
        cid, user, body, created, updated = c
        url = f"{self.api}/repos/{r.name}"
        return {"url": f"{url}/issues/comments/{cid}",
                "html_url": self.html(f"{r.name}/issues/{it.number}#issuecomment-{cid}"),
                "issue_url": f"{url}/issues/{it.number}", "id": cid, "node_id": node_id("IssueComment", cid),
                "user": self.user(user), "created_at": gh_time(created), "updated_at": gh_time(updated),
                "author_association": "MEMBER", "body": body,
                "reactions": dict(_REACTIONS, url=f"{url}/issues/comments/{cid}/reactions"),
                "performed_via_github_app": None}

    # -- deployments, releases, runs, commits ------------------------------------------------------------
    def deployment(self, r: Repo, d: Deployment) -> dict[str, Any]:
        url = f"{self.api}/repos/{r.name}"
        return {"url": f"{url}/deployments/{d.id}", "id": d.id, "node_id": node_id("Deployment", d.id),
                "sha": d.sha, "ref": d.ref, "task": "deploy", "payload": {}, "original_environment": d.environment,
                "environment": d.environment, "description": f"Deploy {d.sha[:7]} to {d.environment}",
                "creator": self.user(d.creator), "created_at": gh_time(d.created), "updated_at": gh_time(d.updated),
                "statuses_url": f"{url}/deployments/{d.id}/statuses", "repository_url": url,
                "transient_environment": False, "production_environment": d.environment == "production",
                "performed_via_github_app": None}

    def deployment_status(self, r: Repo, d: Deployment, s: tuple[int, str, int]) -> dict[str, Any]:
        sid, state, t = s
        url = f"{self.api}/repos/{r.name}"
        log = self.html(f"{r.name}/actions/runs/{d.id}")
        return {"url": f"{url}/deployments/{d.id}/statuses/{sid}", "id": sid,
                "node_id": node_id("DeploymentStatus", sid), "state": state, "creator": self.user(d.creator),
                "description": {"queued": "Deployment queued", "in_progress": "Deploying", "success": "Deployed",
                                "failure": "Deployment failed", "error": "Deployment errored",
                                "inactive": "Superseded by a newer deployment"}[state],
                "environment": d.environment, "target_url": log, "created_at": gh_time(t), "updated_at": gh_time(t),
                "deployment_url": f"{url}/deployments/{d.id}", "repository_url": url,
                "environment_url": f"https://{d.environment}.{r.name.split('/')[1]}.acme.example",
                "log_url": log, "performed_via_github_app": None}

    @staticmethod
    def release_created(r: Repo, rel: Release) -> int:
        """A release's `created_at` is its commit's date, not when the release was drafted or published:
        https://docs.github.com/rest/releases/releases#get-the-latest-release ("The created_at attribute is the
        date of the commit used for the release, and not the date when the release was drafted or published")."""
        i = r.commit_index.get(rel.sha)
        return min(r.commits[i].time, rel.published) if i is not None else rel.created

    def release(self, r: Repo, rel: Release) -> dict[str, Any]:
        url = f"{self.api}/repos/{r.name}"
        return {"url": f"{url}/releases/{rel.id}", "assets_url": f"{url}/releases/{rel.id}/assets",
                "upload_url": f"{url}/releases/{rel.id}/assets{{?name,label}}",
                "html_url": self.html(f"{r.name}/releases/tag/{rel.tag}"), "id": rel.id,
                "author": self.user(rel.author), "node_id": node_id("Release", rel.id), "tag_name": rel.tag,
                "target_commitish": "main", "name": rel.tag, "draft": False, "immutable": False,
                "prerelease": False, "created_at": gh_time(self.release_created(r, rel)),
                "updated_at": gh_time(rel.published),
                "published_at": gh_time(rel.published), "assets": [],
                "tarball_url": f"{url}/tarball/{rel.tag}", "zipball_url": f"{url}/zipball/{rel.tag}",
                "body": f"Release {rel.tag}"}

    def workflow(self, r: Repo) -> dict[str, Any]:
        file, wid, name = DEPLOY_WORKFLOW
        url = f"{self.api}/repos/{r.name}"
        return {"id": wid, "node_id": node_id("Workflow", wid), "name": name, "path": f".github/workflows/{file}",
                "state": "active", "created_at": gh_time(self.w.start_ms), "updated_at": gh_time(self.w.start_ms),
                "url": f"{url}/actions/workflows/{wid}",
                "html_url": self.html(f"{r.name}/blob/main/.github/workflows/{file}"),
                "badge_url": self.html(f"{r.name}/workflows/{name}/badge.svg")}

    def run(self, r: Repo, run: WorkflowRun) -> dict[str, Any]:
        file, wid, name = DEPLOY_WORKFLOW
        url = f"{self.api}/repos/{r.name}"
        c = r.commits[r.commit_index[run.sha]]
        repo_min = {"id": r.id, "node_id": node_id("Repository", r.id), "name": r.name.split("/")[1],
                    "full_name": r.name, "private": True, "owner": self.org(), "html_url": self.html(r.name),
                    "url": url}
        person = {"name": self.w.users[c.author].name, "email": self.w.users[c.author].email}
        return {"id": run.id, "name": name, "node_id": node_id("WorkflowRun", run.id), "head_branch": "main",
                "head_sha": run.sha, "path": f".github/workflows/{file}", "display_title": c.message.split("\n")[0],
                "run_number": run.number, "event": run.event, "status": run.status, "conclusion": run.conclusion,
                "workflow_id": wid, "check_suite_id": run.id + 7, "url": f"{url}/actions/runs/{run.id}",
                "html_url": self.html(f"{r.name}/actions/runs/{run.id}"), "pull_requests": [],
                "created_at": gh_time(run.created), "updated_at": gh_time(run.updated),
                "actor": self.user(run.actor), "run_attempt": 1, "referenced_workflows": [],
                "run_started_at": gh_time(run.started), "triggering_actor": self.user(run.actor),
                "jobs_url": f"{url}/actions/runs/{run.id}/jobs", "logs_url": f"{url}/actions/runs/{run.id}/logs",
                "workflow_url": f"{url}/actions/workflows/{wid}",
                "head_commit": {"id": c.sha, "tree_id": sha40("tree", c.sha), "message": c.message,
                                "timestamp": gh_time(c.time), "author": person, "committer": person},
                "repository": repo_min, "head_repository": repo_min}

    def commit(self, r: Repo, c: Commit, parent: Commit | None) -> dict[str, Any]:
        url = f"{self.api}/repos/{r.name}"
        u = self.w.users[c.author]
        person = {"name": u.name, "email": u.email, "date": gh_time(c.time)}
        parents = [] if parent is None else [{"sha": parent.sha, "url": f"{url}/commits/{parent.sha}",
                                              "html_url": self.html(f"{r.name}/commit/{parent.sha}")}]
        return {"sha": c.sha, "node_id": node_id("Commit", int(c.sha[:8], 16)),
                "commit": {"author": person, "committer": person, "message": c.message,
                           "tree": {"sha": sha40("tree", c.sha), "url": f"{url}/git/trees/{sha40('tree', c.sha)}"},
                           "url": f"{url}/git/commits/{c.sha}", "comment_count": 0,
                           "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                            "payload": None, "verified_at": None}},
                "url": f"{url}/commits/{c.sha}", "html_url": self.html(f"{r.name}/commit/{c.sha}"),
                "comments_url": f"{url}/commits/{c.sha}/comments", "author": self.user(c.author),
                "committer": self.user(c.author), "parents": parents}
