"""Build the archive krew installs kubectl-itsm from, byte for byte the same on every machine
(fixed times, owners and order), and keep plugins/krew/itsm.yaml's sha256 in step with it.

    python plugins/krew/archive.py [--out DIR]   write the archive, print its path and sha256
    python plugins/krew/archive.py --check       fail unless the manifest names this archive
    python plugins/krew/archive.py --update      write its sha256 and version into the manifest
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "itsm.yaml"
FILES = ("kubectl-itsm",)


def version() -> str:
    text = (HERE.parent.parent / "pyproject.toml").read_text()
    found = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert found, "pyproject.toml has no version"
    return found.group(1)


def archive_bytes() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in FILES:
            data = (HERE / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def name() -> str:
    return f"kubectl-itsm-{version()}.tar.gz"


def manifest_sha() -> set[str]:
    return set(re.findall(r"sha256: ([0-9a-f]{64})", MANIFEST.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent.parent / "dist")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--update", action="store_true")
    args = parser.parse_args(argv)
    data = archive_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if args.check:
        if manifest_sha() != {sha}:
            print(f"{MANIFEST}: sha256 is not the archive's {sha}: run --update", file=sys.stderr)
            return 1
        return 0
    if args.update:
        text = re.sub(r"sha256: [0-9a-f]{64}", f"sha256: {sha}", MANIFEST.read_text())
        text = re.sub(
            r"(download/v)[^/]+(/kubectl-itsm-)[^/]+(\.tar\.gz)",
            rf"\g<1>{version()}\g<2>{version()}\g<3>",
            text,
        )
        text = re.sub(r"^  version: v.*$", f"  version: v{version()}", text, flags=re.MULTILINE)
        MANIFEST.write_text(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / name()
    path.write_bytes(data)
    print(f"{path} {sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
