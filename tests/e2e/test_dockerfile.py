"""The operator's Dockerfile, linted (no image can be built here): a pinned base, two stages,
git in the image, a numeric non-root user that the chart's pod runs as, `opsledger run`."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    result = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def build_args() -> dict[str, str]:
    return dict(
        rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest
    )


def test_every_base_image_is_pinned_to_an_exact_version() -> None:
    args = build_args()
    bases = [rest.split()[0] for word, rest in instructions() if word == "FROM"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_runtime_stage_installs_git_and_copies_only_the_build_result() -> None:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    runtime = steps[last_from:]
    installs = " ".join(rest for word, rest in runtime if word == "RUN")
    assert re.search(r"apt-get install .*\bgit\b", installs)
    assert "openssh-client" in installs  # ssh:// CMDB remotes
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies
    assert all(c.startswith("--from=") for c in copies), "sources stay in the build stage"


def test_runs_as_a_numeric_non_root_user_the_chart_agrees_with() -> None:
    users = [rest for word, rest in instructions() if word == "USER"]
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    assert instructions()[-1][0] in {"ENTRYPOINT", "CMD", "USER", "EXPOSE"}
    values = yaml.safe_load((ROOT / "charts/opsledger/values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_opsledger_run_in_exec_form() -> None:
    entrypoints = [rest for word, rest in instructions() if word == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ["opsledger", "run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "opsledger" in scripts


def test_build_context_holds_what_the_build_copies_and_nothing_else() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    copied = [
        source
        for word, rest in instructions()
        if word == "COPY" and not rest.startswith("--from=")
        for source in rest.split()[:-1]
    ]
    assert "operator/" in copied
    for source in copied:
        assert f"!{source}" in ignore, f"{source} is copied but left out of the build context"
        assert (ROOT / source).exists()
