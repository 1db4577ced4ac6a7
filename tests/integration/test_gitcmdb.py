"""The Git CMDB store against real git and a bare remote on disk."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from opsledger.adapters.gitcmdb import (
    CMDBError,
    Credentials,
    GitCMDB,
    RemoteUnavailableError,
    Write,
)
from opsledger.domain.records import ci_record, record_path, to_yaml
from opsledger.models.configitem import ConfigurationItemSpec

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository seeded from cmdb-repo-template/, as `opsledger dev up` makes it."""
    bare = tmp_path / "cmdb.git"
    _git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = tmp_path / "seed"
    shutil.copytree(ROOT / "cmdb-repo-template", seed)
    _git("init", "--quiet", "--initial-branch=main", cwd=seed)
    _git("add", "--all", cwd=seed)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed", cwd=seed)
    _git("push", "--quiet", str(bare), "main", cwd=seed)
    return bare


def _commits(remote: Path) -> int:
    return int(_git("--git-dir", str(remote), "rev-list", "--count", "main").strip())


def _files(remote: Path, prefix: str = "clusters/") -> list[str]:
    out = _git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main")
    return [line for line in out.splitlines() if line.startswith(prefix) and line.endswith(".yaml")]


def _show(remote: Path, path: str) -> str:
    return _git("--git-dir", str(remote), "show", f"main:{path}")


def _store(remote: Path, tmp_path: Path, cluster: str = "dev", **kw: float) -> GitCMDB:
    return GitCMDB(
        remote.as_uri(),
        tmp_path / f"work-{cluster}",
        cluster=cluster,
        debounce=kw.get("debounce", 0.3),
    )


def _path(cluster: str, i: int) -> str:
    return f"clusters/{cluster}/shop/configurationitems/ci-{i:02d}.yaml"


def test_fifty_records_land_in_a_handful_of_commits(remote: Path, tmp_path: Path) -> None:
    store = _store(remote, tmp_path)
    before = _commits(remote)

    async def write_all() -> list[object]:
        return await asyncio.gather(
            *(
                store.write(
                    _path("dev", i), f"name: ci-{i}\n", f"ConfigurationItem shop/ci-{i} created"
                )
                for i in range(50)
            )
        )

    results = asyncio.run(write_all())
    assert len(_files(remote)) == 50
    assert 1 <= _commits(remote) - before <= 3
    assert all(r.changed for r in results)  # type: ignore[attr-defined]
    message = _git("--git-dir", str(remote), "log", "-1", "--format=%B", "main")
    assert message.startswith("cmdb(dev): update 50 records")
    assert (
        "- clusters/dev/shop/configurationitems/ci-07.yaml: ConfigurationItem shop/ci-7 created"
        in message
    )


def test_unchanged_records_make_no_commit(remote: Path, tmp_path: Path) -> None:
    first = _store(remote, tmp_path).commit_and_push(
        [Write(_path("dev", 1), "image: web:1\n", "created")]
    )
    count = _commits(remote)
    # A new operator process (a restart) with a fresh working copy renders the same bytes.
    again = GitCMDB(remote.as_uri(), tmp_path / "restarted", cluster="dev").commit_and_push(
        [Write(_path("dev", 1), "image: web:1\n", "resumed")]
    )
    assert _commits(remote) == count
    assert again[_path("dev", 1)].changed is False
    assert again[_path("dev", 1)].sha == first[_path("dev", 1)].sha


def test_a_change_is_one_commit_naming_its_reason(remote: Path, tmp_path: Path) -> None:
    store = _store(remote, tmp_path)
    store.commit_and_push([Write(_path("dev", 1), "image: web:1\n", "created")])
    count = _commits(remote)
    result = store.commit_and_push(
        [
            Write(
                _path("dev", 1),
                "image: web:2\n",
                "ConfigurationItem shop/ci-01: images.app changed",
            )
        ]
    )
    assert _commits(remote) == count + 1
    assert _show(remote, _path("dev", 1)) == "image: web:2\n"
    subject = _git("--git-dir", str(remote), "log", "-1", "--format=%s", "main").strip()
    assert subject == "cmdb(dev): ConfigurationItem shop/ci-01: images.app changed"
    assert (
        result[_path("dev", 1)].sha == _git("--git-dir", str(remote), "rev-parse", "main").strip()
    )


def test_two_clusters_pushing_at_once_lose_nothing(remote: Path, tmp_path: Path) -> None:
    stores = {c: _store(remote, tmp_path, c) for c in ("east", "west")}
    errors: list[BaseException] = []

    def writer(cluster: str) -> None:
        try:
            for batch in range(6):
                stores[cluster].commit_and_push(
                    [
                        Write(_path(cluster, batch * 4 + i), f"{cluster} {batch} {i}\n", "created")
                        for i in range(4)
                    ]
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(c,)) for c in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(_files(remote, "clusters/east/")) == 24
    assert len(_files(remote, "clusters/west/")) == 24
    assert _show(remote, _path("west", 23)) == "west 5 3\n"


def test_an_unreachable_remote_is_reported_and_records_arrive_after(
    remote: Path, tmp_path: Path
) -> None:
    store = _store(remote, tmp_path)
    store.commit_and_push([Write(_path("dev", 1), "v1\n", "created")])
    moved = remote.with_name("moved-away.git")
    remote.rename(moved)
    try:
        with pytest.raises(RemoteUnavailableError) as info:
            asyncio.run(store.write(_path("dev", 1), "v2\n", "changed while the remote was gone"))
        assert remote.as_uri() in str(info.value)
        assert "does not appear to be a git repository" in str(info.value)
    finally:
        moved.rename(remote)
    result = asyncio.run(store.write(_path("dev", 1), "v2\n", "changed while the remote was gone"))
    assert result.changed
    assert _show(remote, _path("dev", 1)) == "v2\n"


def test_writes_outside_the_repository_are_refused(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(CMDBError, match="outside the repository"):
        _store(remote, tmp_path).commit_and_push([Write("../escape.yaml", "x", "nope")])


def test_a_token_is_handed_to_git_through_an_askpass_helper(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token")
    env = Credentials(token_file=token, username="bot").environment(tmp_path)
    helper = env["GIT_ASKPASS"]
    ask = lambda prompt: subprocess.run(  # noqa: E731
        [helper, prompt], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert ask("Username for 'https://git.example': ") == "bot"
    assert ask("Password for 'https://bot@git.example': ") == "s3cret-token"
    assert "s3cret-token" not in " ".join(env.values())  # never on a command line


def test_ssh_keys_require_verified_host_keys(tmp_path: Path) -> None:
    key = tmp_path / "id"
    with pytest.raises(CMDBError, match="known_hosts"):
        Credentials(ssh_key_file=key).environment(tmp_path)
    env = Credentials(ssh_key_file=key, known_hosts_file=tmp_path / "kh").environment(tmp_path)
    assert "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"]


def test_validate_rejects_a_hand_broken_record_in_a_checkout(remote: Path, tmp_path: Path) -> None:
    path = record_path("dev", "shop", "configurationitems", "web")
    text = to_yaml(
        ci_record(
            cluster="dev",
            namespace="shop",
            name="web",
            spec=ConfigurationItemSpec(),
            observed={"replicas": 2},
        )
    )
    _store(remote, tmp_path).commit_and_push([Write(path, text, "created")])
    checkout = tmp_path / "checkout"
    _git("clone", "--quiet", remote.as_uri(), str(checkout))

    def validate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsledger", "cmdb", "validate", str(checkout)],
            capture_output=True,
            text=True,
            check=False,
        )

    ok = validate()
    assert ok.returncode == 0, ok.stderr
    assert "1 record(s) checked" in ok.stdout
    (checkout / path).write_text(text.replace("lifecycle: active", "lifecycle: zombie"))
    broken = validate()
    assert broken.returncode == 1
    assert f"{path}: spec.lifecycle:" in broken.stderr
    workflow = (checkout / ".github" / "workflows" / "validate.yaml").read_text()
    assert "opsledger cmdb validate ." in workflow
