"""A real Gitea on loopback: the forge the pull-request tests open, review and merge on.

Built from its Go module by `tools/build.sh gitea`; it reads its templates and locales from the
module's folder in the Go module cache (`STATIC_ROOT_PATH`), runs on a SQLite file, and gets two
users — `opsledger` (the operator's identity, owner of the CMDB repository) and `rita` (a
reviewer with write access) — and the repository `opsledger/cmdb`, seeded from
`cmdb-repo-template/`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsledger.devenv.paths import ToolMissingError, cache_dir, source_root, versions
from opsledger.devenv.processes import Component, ProcessTable, free_ports

OWNER = "opsledger"
REVIEWER = "rita"
# More people with write access: a second reviewer, and one the approval policy does not name.
COLLEAGUES = ("vera", "mallory")
REPOSITORY = "cmdb"


@dataclass(frozen=True)
class User:
    name: str
    email: str
    token: str


class GiteaServer:
    """One Gitea, its state in `folder`; `up()` returns once it answers and is seeded."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder.resolve()
        version = versions()["GITEA_VERSION"]
        self.binary = cache_dir() / "bin" / f"gitea-{version}" / "gitea"
        self.static = cache_dir() / "gomod" / "code.gitea.io" / f"gitea@v{version}"
        self.table = ProcessTable(self.dir / "processes.json")
        self.port = 0
        self.users: dict[str, User] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def repository(self) -> str:
        return f"{OWNER}/{REPOSITORY}"

    @property
    def clone_url(self) -> str:
        return f"{self.url}/{self.repository}.git"

    def token_file(self, user: str) -> Path:
        path = self.dir / f"{user}.token"
        path.write_text(self.users[user].token + "\n")
        path.chmod(0o600)
        return path

    def up(self) -> None:
        for path, what in ((self.binary, "`make tools`"), (self.static, "`make tools`")):
            if not path.exists():
                raise ToolMissingError(f"missing {path}: run {what} to build Gitea")
        self.dir.mkdir(parents=True, exist_ok=True)
        [self.port] = free_ports(1)
        config = self._write_config()
        component = Component(
            name="gitea",
            argv=[str(self.binary), "--config", str(config), "--work-path", str(self.dir), "web"],
            port=self.port,
            health=self._healthy,
            log=self.dir / "gitea.log",
            env=self._env(),
            cwd=self.dir,
            timeout=120,
        )
        self.table.start(component)
        self.table.wait_healthy(component)
        self.users[OWNER] = self._user(OWNER, admin=True)
        for name in (REVIEWER, *COLLEAGUES):
            self.users[name] = self._user(name, admin=False)
        self._seed()

    def down(self) -> None:
        self.table.stop("gitea")

    def api(self, method: str, path: str, body: Any = None, *, user: str = OWNER) -> Any:
        """Call Gitea's API as `user`; returns the decoded JSON (or None)."""
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"token {self.users[user].token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"Gitea {method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')}"
            ) from exc
        return json.loads(data) if data.strip() else None

    # -- internals ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {"GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT": "true", "GITEA_WORK_DIR": str(self.dir)}

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/api/healthz", timeout=2) as response:
            return bool(response.status == 200)

    def _write_config(self) -> Path:
        data = self.dir / "data"
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True)
        text = f"""\
APP_NAME = OpsLedger test forge
RUN_MODE = prod
RUN_USER = {user.stdout.strip()}
WORK_PATH = {self.dir}

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {self.port}
DOMAIN = 127.0.0.1
ROOT_URL = {self.url}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = {data}
STATIC_ROOT_PATH = {self.static}

[database]
DB_TYPE = sqlite3
PATH = {data}/gitea.db

[repository]
ROOT = {self.dir}/repositories
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = {secrets.token_hex(32)}
INTERNAL_TOKEN = {secrets.token_urlsafe(48)}
PASSWORD_HASH_ALGO = pbkdf2

[service]
DISABLE_REGISTRATION = true

[oauth2]
ENABLED = false

[actions]
ENABLED = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[log]
MODE = console
LEVEL = Warn
"""
        path = self.dir / "app.ini"
        path.write_text(text)
        return path

    def _cli(self, *args: str) -> str:
        result = subprocess.run(
            [
                str(self.binary),
                "--config",
                str(self.dir / "app.ini"),
                "--work-path",
                str(self.dir),
                *list(args),
            ],
            env={**os.environ, **self._env()},
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()[-1500:]
            raise RuntimeError(f"gitea {' '.join(args[:3])} failed: {output}")
        return result.stdout.strip()

    def _user(self, name: str, *, admin: bool) -> User:
        email = f"{name}@example.com"
        self._cli(
            "admin",
            "user",
            "create",
            "--username",
            name,
            "--password",
            secrets.token_urlsafe(16),
            "--email",
            email,
            "--must-change-password=false",
            *(["--admin"] if admin else []),
        )
        token = self._cli(
            "admin",
            "user",
            "generate-access-token",
            "--username",
            name,
            "--token-name",
            "tests",
            "--scopes",
            "all",
            "--raw",
        )
        return User(name, email, token.splitlines()[-1].strip())

    def _seed(self) -> None:
        """The CMDB repository from the template, the reviewers collaborators with write."""
        self.api("POST", "/user/repos", {"name": REPOSITORY, "default_branch": "main"})
        for name in (REVIEWER, *COLLEAGUES):
            self.api(
                "PUT", f"/repos/{self.repository}/collaborators/{name}", {"permission": "write"}
            )
        template = source_root() / "cmdb-repo-template"
        owner = self.users[OWNER]
        with tempfile.TemporaryDirectory() as work:
            seed = Path(work) / "seed"
            shutil.copytree(template, seed)
            remote = f"http://{OWNER}:{owner.token}@127.0.0.1:{self.port}/{self.repository}.git"
            for args in (
                ["init", "--quiet", "--initial-branch=main"],
                ["add", "--all"],
                [
                    "-c",
                    f"user.name={OWNER}",
                    "-c",
                    f"user.email={owner.email}",
                    "commit",
                    "--quiet",
                    "-m",
                    "Initialise the CMDB from cmdb-repo-template",
                ],
                ["push", "--quiet", remote, "main"],
            ):
                subprocess.run(["git", *args], cwd=seed, check=True, capture_output=True)
