"""How the Git CMDB store authenticates to its remote: the environment git runs with (an askpass
helper reading a token file, or an SSH command with verified host keys), from the files the chart
mounts; and remote URLs and git's messages with any user:password@ part taken out.
"""

from __future__ import annotations

import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opsledger.adapters.gitcmdb_types import CMDBError


@dataclass(frozen=True)
class Credentials:
    """How to authenticate to the remote; secrets stay in files (mounted from a Secret)."""

    token_file: Path | None = None
    username: str = "opsledger"
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None

    def environment(self, scratch: Path) -> dict[str, str]:
        """Environment for git: an askpass helper reading the token file, or an SSH command."""
        # A stalled transfer must fail, not hang the single writer: abort below 1 KB/s for 30 s.
        env: dict[str, str] = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
            "GIT_HTTP_LOW_SPEED_TIME": "30",
        }
        if self.token_file:
            helper = scratch / "askpass.sh"
            helper.write_text(
                "#!/bin/sh\n"
                'case "$1" in\n'
                f"  Username*) echo {shlex.quote(self.username)} ;;\n"
                f"  *) cat {shlex.quote(str(self.token_file))} ;;\n"
                "esac\n"
            )
            helper.chmod(stat.S_IRWXU)
            env["GIT_ASKPASS"] = str(helper)
        if self.ssh_key_file:
            if not self.known_hosts_file:
                raise CMDBError(
                    "an SSH key needs a known_hosts file: host keys are verified, never trusted "
                    "on first use"
                )
            env["GIT_SSH_COMMAND"] = " ".join(
                [
                    "ssh",
                    "-i",
                    shlex.quote(str(self.ssh_key_file)),
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    f"UserKnownHostsFile={shlex.quote(str(self.known_hosts_file))}",
                    "-o",
                    "StrictHostKeyChecking=yes",
                ]
            )
        return env


def credentials_from_env(settings_env: Mapping[str, str]) -> Credentials:
    """Credentials from the file paths the chart mounts (OPSLEDGER_CMDB_*_FILE)."""

    def path(name: str) -> Path | None:
        value = settings_env.get(name)
        return Path(value) if value else None

    return Credentials(
        token_file=path("OPSLEDGER_CMDB_TOKEN_FILE"),
        username=settings_env.get("OPSLEDGER_CMDB_USERNAME", "opsledger"),
        ssh_key_file=path("OPSLEDGER_CMDB_SSH_KEY_FILE"),
        known_hosts_file=path("OPSLEDGER_CMDB_KNOWN_HOSTS_FILE"),
    )


def redact_url(url: str) -> str:
    """A remote URL without any user:password@ part, fit for conditions and Events."""
    return re.sub(r"://[^/@\s]*@", "://", url)


def redact_text(text: str) -> str:
    """Text (git's output, an error) with any URL's user:password@ part taken out."""
    return re.sub(r"://[^/@\s]*@", "://", text)
