"""The CMDB as a Git repository (GitPython over the system git).

Writes are collected for a short debounce window (or until a batch is full) and land as one
commit whose message lists every record and why it changed. A push that loses a race fetches the
remote tip, re-applies the batch on top of it (a rebase of our single commit; records are sharded
by cluster, so it never conflicts) and retries with back-off. Nothing is kept only on disk: the
caller awaits the push, and on failure the record is simply rendered again from the cluster on the
next attempt, so an operator restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import git

from opsledger.adapters.gitcmdb_credentials import (
    Credentials,
    credentials_from_env,
    redact_text,
    redact_url,
)
from opsledger.adapters.gitcmdb_types import CMDBError, Commit, RemoteUnavailableError, Write

T = TypeVar("T")
log = logging.getLogger("opsledger.cmdb")

# git's words for a push that lost a race (as opposed to one the remote refused for good)
RETRYABLE_PUSH = (
    "[rejected]",
    "non-fast-forward",
    "fetch first",
    "failed to update ref",
    "cannot lock ref",
    "incorrect old value",
)
GIT_TIMEOUT = 120  # seconds any one git command may take before it is killed
MARKER = ".opsledger-workdir"  # only folders the store made itself are ever deleted


@dataclass
class _Pending:
    write: Write
    waiters: list[asyncio.Future[Commit]] = field(default_factory=list)


class GitCMDB:
    """A working copy of the CMDB remote and the single writer that commits to it."""

    def __init__(
        self,
        url: str,
        workdir: Path,
        *,
        cluster: str,
        branch: str = "main",
        credentials: Credentials | None = None,
        debounce: float = 1.0,
        max_batch: int = 100,
        push_attempts: int = 6,
        author: tuple[str, str] = ("OpsLedger", "opsledger@localhost"),
    ) -> None:
        self.url = url
        self.workdir = workdir
        self.cluster = cluster
        self.branch = branch
        self.debounce = debounce
        self.max_batch = max_batch
        self.push_attempts = push_attempts
        self.author = author
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._env = (credentials or Credentials()).environment(self.workdir)
        self._pending: dict[str, _Pending] = {}
        self._wakeup: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # one git operation at a time on the working copy
        self.commits_made = 0
        # path → (content, commit, when): what we last saw the remote hold, so re-rendering an
        # unchanged record (every watch event does) costs no git round-trip. Entries expire so
        # an externally rewritten remote heals.
        self._known: dict[str, tuple[str, Commit, float]] = {}
        self._inflight: set[str] = set()
        self.known_ttl = 600.0

    # -- the async front: batch writes ---------------------------------------------------

    async def write(self, path: str, content: str, reason: str) -> Commit:
        """Queue a record; return once it is in the remote (raises CMDBError when it cannot be)."""
        known = self._known.get(path)
        if (
            known
            and known[0] == content
            and path not in self._pending  # a queued or in-flight newer version must not be
            and path not in self._inflight  # overtaken by a stale "already there"
            and time.monotonic() - known[2] < self.known_ttl
        ):
            return Commit(path, known[1].sha, changed=False)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Commit] = loop.create_future()
        pending = self._pending.get(path)
        if pending is None:
            self._pending[path] = _Pending(Write(path, content, reason), [future])
        else:  # a newer version of the same record replaces the queued one
            pending.write = Write(path, content, reason)
            pending.waiters.append(future)
        self._ensure_flusher()
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._wakeup = asyncio.Event()
            self._flusher = asyncio.create_task(self._flush_loop(), name="cmdb-flusher")

    async def _flush_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._pending) < self.max_batch:
                await asyncio.sleep(self.debounce)  # let concurrent writes join the batch
            while self._pending:
                names = list(self._pending)[: self.max_batch]
                batch = [self._pending.pop(n) for n in names]
                self._inflight.update(names)
                try:
                    results = await asyncio.to_thread(
                        self.commit_and_push, [p.write for p in batch]
                    )
                except Exception as exc:
                    self._inflight.difference_update(names)
                    for pending in batch:
                        for waiter in pending.waiters:
                            if not waiter.done():
                                waiter.set_exception(exc)
                    continue
                self._inflight.difference_update(names)
                now = time.monotonic()
                for pending in batch:
                    commit = results[pending.write.path]
                    self._known[commit.path] = (pending.write.content, commit, now)
                    for waiter in pending.waiters:
                        if not waiter.done():
                            waiter.set_result(commit)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    # -- the sync core: one commit, pushed -------------------------------------------------

    def commit_and_push(self, writes: list[Write]) -> dict[str, Commit]:
        """Write, commit (only if something changed) and push; retried on lost races.

        Every failure surfaces as CMDBError (RemoteUnavailableError for the remote's part); a
        working copy left broken by a local failure is cloned afresh next time.
        """
        with self._lock, _FileLock(self.workdir / ".lock"):
            started = time.monotonic()
            try:
                result = self._commit_and_push(writes)
            except CMDBError:
                raise
            except (git.GitError, OSError, ValueError) as exc:
                self._discard_clone()
                raise CMDBError(
                    f"the CMDB working copy in {self.workdir} failed ({redact_text(str(exc))}); "
                    "it is cloned afresh on the next attempt"
                ) from exc
            log.info(
                "CMDB: committed %d records (%d changed) in %.3fs",
                len(writes),
                sum(1 for c in result.values() if c.changed),
                time.monotonic() - started,
            )
            return result

    def _commit_and_push(self, writes: list[Write]) -> dict[str, Commit]:
        repo = self._repo()
        delay = 0.2
        for attempt in range(1, self.push_attempts + 1):
            self._sync_to_remote(repo)
            changed = self._apply(repo, writes)
            if not changed:
                return self._locate(repo, writes, changed)
            repo.index.commit(
                self._message(writes, changed),
                author=git.Actor(*self.author),
                committer=git.Actor(*self.author),
            )
            try:
                self._git(repo, "push", "origin", f"HEAD:refs/heads/{self.branch}")
            except RemoteUnavailableError as exc:
                if attempt < self.push_attempts and any(
                    mark in str(exc) for mark in RETRYABLE_PUSH
                ):
                    time.sleep(delay + random.uniform(0, delay))
                    delay = min(delay * 2, 5.0)
                    continue
                raise
            self.commits_made += 1
            return self._locate(repo, writes, changed)
        raise CMDBError(  # pragma: no cover - the loop returns or raises on its last try
            f"push to {redact_url(self.url)} kept losing races after {self.push_attempts} tries"
        )

    def _repo(self) -> git.Repo:
        clone = self.workdir / "repo"
        if (clone / ".git").exists():
            repo = git.Repo(clone)
            if repo.remotes and repo.remotes.origin.url == self.url:
                (clone / ".git" / "index.lock").unlink(missing_ok=True)  # left by a crash
                return repo
            self._discard_clone()  # a working copy of another remote: start afresh
        if clone.exists() and any(clone.iterdir()):
            raise CMDBError(
                f"{clone} exists and is not a working copy OpsLedger made; "
                "point OPSLEDGER_CMDB_WORKDIR at an empty folder"
            )
        try:
            git.Repo.clone_from(
                self.url, clone, branch=self.branch, env=self._env, kill_after_timeout=GIT_TIMEOUT
            )
        except git.GitCommandError as exc:
            raise RemoteUnavailableError(_explain(self.url, "clone", exc)) from exc
        (clone / ".git" / MARKER).write_text("made by OpsLedger; safe to delete\n")
        return git.Repo(clone)

    def _discard_clone(self) -> None:
        clone = self.workdir / "repo"
        if (clone / ".git" / MARKER).exists():
            shutil.rmtree(clone, ignore_errors=True)

    def _sync_to_remote(self, repo: git.Repo) -> None:
        """Make the working copy equal to the remote tip (our records are re-applied on top)."""
        self._git(repo, "fetch", "--quiet", "origin", self.branch)
        repo.git.reset("--hard", f"origin/{self.branch}")
        repo.git.clean("-fdq")

    def _apply(self, repo: git.Repo, writes: list[Write]) -> list[str]:
        root = Path(repo.working_tree_dir or self.workdir / "repo")
        for w in writes:
            target = root / w.path
            if not target.resolve().is_relative_to(root.resolve()):
                raise CMDBError(f"refusing to write outside the repository: {w.path}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(w.content)
        repo.git.add("--", *[w.path for w in writes])
        staged = repo.git.diff("--cached", "--name-only").splitlines()
        return [w.path for w in writes if w.path in staged]

    def _locate(self, repo: git.Repo, writes: list[Write], changed: list[str]) -> dict[str, Commit]:
        head = repo.head.commit.hexsha
        unchanged = [w.path for w in writes if w.path not in changed]
        last = self._last_commits(repo, unchanged) if unchanged else {}
        return {
            w.path: Commit(w.path, head, True)
            if w.path in changed
            else Commit(w.path, last.get(w.path) or head, False)  # the commit that last wrote it
            for w in writes
        }

    def _last_commits(self, repo: git.Repo, paths: list[str]) -> dict[str, str]:
        """The commit that last changed each path, from one walk of the history (a `git log`
        per path was one process and one walk per unchanged record)."""
        found: dict[str, str] = {}
        wanted = set(paths)
        sha = ""
        for line in repo.git.log("--format=%x00%H", "--name-only", "--", *paths).splitlines():
            if line.startswith("\x00"):
                sha = line[1:]
            elif line in wanted and line not in found:
                found[line] = sha
                if len(found) == len(wanted):
                    break
        return found

    def _message(self, writes: list[Write], changed: list[str]) -> str:
        by_path = {w.path: w for w in writes}
        noun = "record" if len(changed) == 1 else "records"
        reasons = {by_path[path].reason for path in changed}
        if len(reasons) == 1:  # one record, or several written for one reason (a report)
            subject = f"cmdb({self.cluster}): {reasons.pop().splitlines()[0]}"
        else:
            subject = f"cmdb({self.cluster}): update {len(changed)} {noun}"
        lines = [subject[:120], ""]
        lines += [f"- {path}: {by_path[path].reason}" for path in changed]
        return "\n".join(lines) + "\n"

    def _git(self, repo: git.Repo, *args: str) -> str:
        try:
            with repo.git.custom_environment(**self._env):
                out: str = repo.git.execute(["git", *args], kill_after_timeout=GIT_TIMEOUT)
                return out
        except git.GitCommandError as exc:
            raise RemoteUnavailableError(_explain(self.url, args[0], exc)) from exc

    # -- proposals and approvals (reads of the remote; the working tree is never touched) --

    def _guarded(self, action: Callable[[git.Repo], T]) -> T:
        """Run `action` on the working copy under the store's locks, errors as CMDBError."""
        with self._lock, _FileLock(self.workdir / ".lock"):
            try:
                repo = self._repo()
                return action(repo)
            except CMDBError:
                raise
            except (git.GitError, OSError, ValueError) as exc:
                raise CMDBError(f"the CMDB working copy failed: {redact_text(str(exc))}") from exc

    def refresh(self) -> None:
        """Fetch every branch of the remote, forgetting branches deleted there."""

        def fetch(repo: git.Repo) -> None:
            self._git(repo, "fetch", "--quiet", "--prune", "origin")

        self._guarded(fetch)

    def propose(self, branch: str, path: str, content: str, message: str) -> str:
        """Make `branch` the protected branch's tip plus the record at `path`; push it.

        Idempotent: when the remote branch already holds exactly this record, nothing is pushed
        (an operator restart does not re-propose). Returns the proposal's commit.
        """

        def push(repo: git.Repo) -> str:
            self._git(repo, "fetch", "--quiet", "--prune", "origin")
            remote = f"refs/remotes/origin/{branch}"
            if self._ref_exists(repo, remote) and self._show(repo, remote, path) == content:
                return str(repo.git.rev_parse(remote))
            base = f"refs/remotes/origin/{self.branch}"
            index = self.workdir / "proposal.index"
            index.unlink(missing_ok=True)
            env = {"GIT_INDEX_FILE": str(index)}
            blob_file = self.workdir / "proposal.blob"
            blob_file.write_text(content)
            with repo.git.custom_environment(**env, **self._identity()):
                blob = repo.git.hash_object("-w", str(blob_file))
                repo.git.read_tree(base)
                repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{path}")
                tree = repo.git.write_tree()
                commit = str(repo.git.commit_tree(tree, "-p", base, "-m", message))
            index.unlink(missing_ok=True)
            self._git(repo, "push", "--quiet", "--force", "origin", f"{commit}:refs/heads/{branch}")
            return commit

        return self._guarded(push)

    def branch_exists(self, branch: str) -> bool:
        """Whether the remote had `branch` at the last fetch."""
        return self._guarded(lambda repo: self._ref_exists(repo, f"refs/remotes/origin/{branch}"))

    def read(self, path: str) -> str | None:
        """A file on the protected branch as last fetched, or None."""
        return self._guarded(lambda repo: self._show(repo, f"origin/{self.branch}", path))

    def log(self, path: str, limit: int = 50) -> list[tuple[str, str, str, str]]:
        """(commit, author, committed at, subject) of the last `limit` commits on the protected
        branch that touched `path`, newest first: the record's audit trail."""

        def walk(repo: git.Repo) -> list[tuple[str, str, str, str]]:
            out = repo.git.log(
                f"--max-count={limit}",
                "--format=%H%x1f%an <%ae>%x1f%cI%x1f%s",
                f"origin/{self.branch}",
                "--",
                path,
            )
            rows = [line.split("\x1f") for line in out.splitlines() if line]
            return [(r[0], r[1], r[2], r[3]) for r in rows if len(r) == 4]

        return self._guarded(walk)

    def list_files(self, folder: str) -> list[str]:
        """The paths of the files directly in `folder` on the protected branch, as last fetched."""

        def names(repo: git.Repo) -> list[str]:
            try:
                out = repo.git.ls_tree("--name-only", f"origin/{self.branch}", f"{folder}/")
            except git.GitCommandError:
                return []
            return [line for line in out.splitlines() if line]

        return self._guarded(names)

    def history(self, path: str) -> list[tuple[str, str, str, str | None]]:
        """(commit, committer, committed at, content) of each first-parent commit on the
        protected branch that touched `path`, oldest first.

        First-parent: for a merge, the merge commit itself (whoever merged) is the one that
        brought the file in, not the proposal's commit on the side branch.
        """

        def walk(repo: git.Repo) -> list[tuple[str, str, str, str | None]]:
            out = repo.git.log(
                "--first-parent",
                "--reverse",
                "--format=%H%x1f%cn <%ce>%x1f%cI",
                f"origin/{self.branch}",
                "--",
                path,
            )
            result = []
            for line in out.splitlines():
                sha, committer, when = line.split("\x1f")
                result.append((sha, committer, when, self._show(repo, sha, path)))
            return result

        return self._guarded(walk)

    def read_at(self, rev: str, path: str) -> str | None:
        """A file as commit `rev` (of the last fetch) holds it, or None."""
        return self._guarded(lambda repo: self._show(repo, rev, path))

    def signers(
        self, commit: str, proposal: str | None, allowed_signers: str, base: str, path: str
    ) -> list[tuple[str, str | None]]:
        """(principal, `path` as that commit holds it) for each good SSH signature on `commit`
        and, where `commit` merged a branch, on the plain commits of that branch's own line
        (first parents) after `proposal`: approval commits reviewers add. Signatures are checked
        against the allowed-signers file as commit `base` holds it (the protected branch before
        the proposal: no commit can admit its own key). Unsigned, badly signed and unknown-key
        commits name nobody; commits brought in from elsewhere (main merged into the branch)
        are not the branch's own and are not looked at."""

        def verify(repo: git.Repo) -> list[tuple[str, str | None]]:
            allowed = self._show(repo, base, allowed_signers)
            if not allowed:
                return []
            parents = str(repo.git.rev_list("--parents", "-n", "1", commit)).split()[1:]
            revs = [commit]
            if len(parents) > 1 and proposal:
                line = str(
                    repo.git.rev_list(
                        "--first-parent", "--ancestry-path", "--no-merges",
                        f"{proposal}..{parents[1]}",
                    )
                )  # fmt: skip
                revs += line.split()
            check = self.workdir / "allowed-signers.check"
            check.write_text(allowed)
            out = self._git(
                repo,
                "-c",
                "gpg.format=ssh",
                "-c",
                f"gpg.ssh.allowedSignersFile={check}",
                "log",
                "--no-walk=unsorted",
                "--format=%H%x1f%G?%x1f%GS",
                *revs,
            )
            found = []
            for line in out.splitlines():
                sha, verdict, signer = [*line.split("\x1f"), "", ""][:3]
                if verdict == "G" and signer:
                    found.append((signer, self._show(repo, sha, path)))
            return found

        return self._guarded(verify)

    def _identity(self) -> dict[str, str]:
        name, email = self.author
        return {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }

    @staticmethod
    def _ref_exists(repo: git.Repo, ref: str) -> bool:
        try:
            repo.git.rev_parse("--verify", "--quiet", ref)
        except git.GitCommandError:
            return False
        return True

    @staticmethod
    def _show(repo: git.Repo, ref: str, path: str) -> str | None:
        try:
            return str(repo.git.show(f"{ref}:{path}", strip_newline_in_stdout=False))
        except git.GitCommandError:
            return None

    def head(self) -> str | None:
        """The remote branch's commit as last fetched (for tests and status)."""
        clone = self.workdir / "repo"
        if not (clone / ".git").exists():
            return None
        return git.Repo(clone).commit(f"origin/{self.branch}").hexsha


def _explain(url: str, action: str, exc: git.GitCommandError) -> str:
    """git's own last words, which say what is wrong (no such repository, auth, network)."""
    stderr = str(exc.stderr or "").strip().replace("stderr: ", "").strip("' \n")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    detail = "; ".join(
        ln for ln in lines if ln.startswith(("fatal", "error", " !", "!", "hint"))
    ) or (lines[-1] if lines else f"exit status {exc.status}")
    return f"git {action} {redact_url(url)} failed: {redact_text(detail)}"


class _FileLock:
    """An exclusive lock on a file, so two processes never share one working copy at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


__all__ = [
    "CMDBError",
    "Commit",
    "Credentials",
    "GitCMDB",
    "RemoteUnavailableError",
    "Write",
    "credentials_from_env",
]
