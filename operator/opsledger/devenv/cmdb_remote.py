"""The CMDB remote of the local environment: a bare Git repository, seeded once from the
checkout's `cmdb-repo-template/` with one commit on `main`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from opsledger.devenv.paths import source_root

BRANCH = "main"
AUTHOR = ("OpsLedger", "opsledger@localhost")


def template_dir() -> Path:
    """The checkout's CMDB template (`source_root()` raises when there is no checkout)."""
    return source_root() / "cmdb-repo-template"


def ensure_cmdb_remote(remote: Path, template: Path | None = None) -> bool:
    """Create and seed the bare repository unless it exists; True when it was created.

    `template` defaults to `template_dir()`, looked up only when the remote is created.
    """
    if (remote / "HEAD").exists():
        return False
    _git("init", "--bare", f"--initial-branch={BRANCH}", str(remote))
    source = template if template is not None else template_dir()
    with tempfile.TemporaryDirectory() as work:
        seed = Path(work) / "seed"
        shutil.copytree(source, seed)
        _git("init", f"--initial-branch={BRANCH}", cwd=seed)
        _git("add", "--all", cwd=seed)
        _git(
            "-c",
            f"user.name={AUTHOR[0]}",
            "-c",
            f"user.email={AUTHOR[1]}",
            "commit",
            "--quiet",
            "-m",
            "Initialise the CMDB from cmdb-repo-template",
            cwd=seed,
        )
        _git("push", "--quiet", str(remote), BRANCH, cwd=seed)
    return True


def _git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
