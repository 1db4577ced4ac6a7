"""The forge behind a small interface: open a change's pull request, read what became of it.

The record's arrival is read from Git (the protected branch holding the record with the spec's
hash); in the `forge` approval mode the forge's approving reviews are what approve it. The forge
gives reviewers a pull request to look at, names the reviewers who approved it, and tells when a
pull request was closed without merging. Pull requests are matched by head repository and
branch, over every page.

Only Gitea (and Forgejo, which keeps Gitea's API) is implemented: it is the forge the tests run
for real. GitHub and GitLab adapters are left out until they can be tested against something real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import requests


class ForgeError(RuntimeError):
    """The forge could not be asked; the message names the forge, the call and the reason."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    open: bool
    merged: bool
    merged_by: str | None = None
    approvers: tuple[str, ...] = ()
    head: str = ""  # "owner/name:branch" it merges from (once merged, the branch may be gone)
    head_commit: str = ""  # the commit it merges


class Forge(Protocol):
    repository: str  # owner/name

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest: ...

    def get(self, number: int, commit: str | None = None) -> PullRequest: ...


PAGE = 50  # Gitea's default maximum page size
MAX_PAGES = 200


class Gitea:
    """Gitea's (and Forgejo's) REST API v1, authenticated with an access token."""

    def __init__(self, url: str, repository: str, token: str, *, timeout: float = 15.0) -> None:
        if repository.count("/") != 1:
            raise ValueError(f"the forge repository must be owner/name, not {repository!r}")
        self.url = url.rstrip("/")
        self.repository = repository
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update(
            {"Authorization": f"token {token}", "Accept": "application/json"}
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        owner, name = self.repository.split("/")
        url = f"{self.url}/api/v1/repos/{quote(owner)}/{quote(name)}{path}"
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ForgeError(f"Gitea at {self.url} did not answer {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            detail = response.text.strip().replace("\n", " ")[:300]
            raise ForgeError(
                f"Gitea at {self.url} refused {method} {path}: HTTP {response.status_code} {detail}"
            )
        return response.json() if response.content else None

    def _pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list (Gitea pages with page and limit)."""
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self._call("GET", path, params={**params, "page": page, "limit": PAGE}) or []
            if not batch:  # (a forge may serve fewer than asked per page: read to the end)
                return items
            items += batch
        raise ForgeError(f"Gitea at {self.url}: more than {MAX_PAGES} pages of {path}")

    def _ours(self, pull: dict[str, Any], head: str) -> bool:
        """A pull request from this repository's `head` branch: a fork's pull request with the
        same branch name is someone else's."""
        ref = pull.get("head") or {}
        repo = (ref.get("repo") or {}).get("full_name")
        return ref.get("ref") == head and str(repo).lower() == self.repository.lower()

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        """The open pull request of `head` (in this repository) into `base`, created or its
        text brought up to date (so an edited change's proposal does not open a second one)."""
        for pull in self._pages("/pulls", state="open"):
            if self._ours(pull, head) and (pull.get("base") or {}).get("ref") == base:
                if pull.get("title") != title or pull.get("body") != body:
                    updated = self._call(
                        "PATCH", f"/pulls/{pull['number']}", json={"title": title, "body": body}
                    )
                    return self._pull(updated, approvers=())
                return self._pull(pull, approvers=())
        created = self._call(
            "POST", "/pulls", json={"head": head, "base": base, "title": title, "body": body}
        )
        return self._pull(created, approvers=())

    def get(self, number: int, commit: str | None = None) -> PullRequest:
        """A pull request's state, and who approved it in a review that still stands: the
        latest review of each person, official (they may write to the repository), not
        dismissed, and of `commit` (without one: not made stale by a later push)."""
        pull = self._call("GET", f"/pulls/{number}")
        latest: dict[str, dict[str, Any]] = {}
        for review in self._pages(f"/pulls/{number}/reviews"):  # oldest first
            login = (review.get("user") or {}).get("login")
            if login and review.get("state") in ("APPROVED", "REQUEST_CHANGES"):
                latest[login] = review
        approvers = tuple(
            sorted(
                login
                for login, review in latest.items()
                if review.get("state") == "APPROVED"
                and review.get("official")  # by someone with write access, as Gitea counts
                and not review.get("dismissed")
                # of exactly the proposal (Gitea's own "stale" flag moves after the merge)
                and (review.get("commit_id") == commit if commit else not review.get("stale"))
            )
        )
        return self._pull(pull, approvers=approvers)

    @staticmethod
    def _pull(pull: dict[str, Any], *, approvers: tuple[str, ...]) -> PullRequest:
        merged_by = (pull.get("merged_by") or {}).get("login")
        ref = pull.get("head") or {}
        repo = (ref.get("repo") or {}).get("full_name") or ""
        return PullRequest(
            number=int(pull["number"]),
            url=str(pull.get("html_url") or ""),
            open=pull.get("state") == "open",
            merged=bool(pull.get("merged")),
            merged_by=str(merged_by) if merged_by else None,
            approvers=approvers,
            head=f"{repo}:{ref.get('ref') or ''}",
            head_commit=str(ref.get("sha") or ""),
        )
