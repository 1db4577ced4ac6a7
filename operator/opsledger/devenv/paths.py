"""Where the local environment finds its binaries and keeps its state."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOT = PACKAGE_ROOT.parents[1]  # the checkout, when running from source


class ToolMissingError(RuntimeError):
    """A binary the local environment needs has not been built or installed."""


def cache_dir() -> Path:
    return Path(os.environ.get("OPSLEDGER_CACHE", Path.home() / ".cache" / "opsledger"))


def source_root() -> Path:
    """The OpsLedger checkout (its tools/ pins the versions the environment runs)."""
    root = Path(os.environ.get("OPSLEDGER_SOURCE", SOURCE_ROOT))
    if not (root / "tools" / "versions.env").exists():
        raise ToolMissingError(
            f"no OpsLedger checkout at {root}: `opsledger dev` runs from a source checkout "
            "(set OPSLEDGER_SOURCE to point at one)"
        )
    return root


def default_state_dir() -> Path:
    if "OPSLEDGER_DEV_DIR" in os.environ:
        return Path(os.environ["OPSLEDGER_DEV_DIR"])
    return source_root() / ".dev"


def versions() -> dict[str, str]:
    result = {}
    for raw in (source_root() / "tools" / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            result[key] = value
    return result


@dataclass(frozen=True)
class Toolbox:
    """Absolute paths of every binary the environment runs."""

    kubernetes: Path
    etcd: Path
    helm: Path
    prometheus: Path
    alertmanager: Path
    kwok_module: Path

    @classmethod
    def locate(cls) -> Toolbox:
        v = versions()
        bins = cache_dir() / "bin"
        box = cls(
            kubernetes=bins / f"kubernetes-{v['KUBERNETES_VERSION']}",
            etcd=bins / f"etcd-{v['ETCD_VERSION']}",
            helm=bins / f"helm-{v['HELM_VERSION']}",
            prometheus=bins / f"prometheus-{v['PROMETHEUS_VERSION']}",
            alertmanager=Path(
                shutil.which("prometheus-alertmanager")
                or shutil.which("alertmanager")
                or "/usr/bin/prometheus-alertmanager"
            ),
            kwok_module=cache_dir() / "gomod" / "sigs.k8s.io" / f"kwok@v{v['KWOK_VERSION']}",
        )
        box.check()
        return box

    def binary(self, name: str) -> Path:
        folder = {
            "kube-apiserver": self.kubernetes,
            "kube-controller-manager": self.kubernetes,
            "kube-scheduler": self.kubernetes,
            "kubectl": self.kubernetes,
            "etcd": self.etcd,
            "helm": self.helm,
            "kwok": self.helm,
            "prometheus": self.prometheus,
            "promtool": self.prometheus,
        }[name]
        return folder / name

    def check(self) -> None:
        names = [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
            "etcd",
            "helm",
            "kwok",
            "prometheus",
            "promtool",
        ]
        missing = [str(self.binary(n)) for n in names if not self.binary(n).exists()]
        if not self.alertmanager.exists():
            missing.append(f"{self.alertmanager} (Debian package prometheus-alertmanager)")
        if not self.kwok_module.exists():
            missing.append(f"{self.kwok_module} (kwok's stages, from the Go module cache)")
        if missing:
            raise ToolMissingError(
                "missing: " + ", ".join(missing) + ". Run `make tools` to build and install them."
            )

    def path_entries(self) -> list[Path]:
        """Folders to put first on PATH: the project's kubectl, helm and promtool."""
        return [self.kubernetes, self.helm, self.prometheus]
