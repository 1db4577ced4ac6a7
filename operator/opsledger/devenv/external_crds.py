"""CRDs of other projects the operator writes to (Argo CD's AppProject, Flux's Kustomization
and HelmRelease) or that a controller the tests run needs (Flux's source kinds), as their own
repositories generate them from their Go API types, taken from their pinned Go modules through
the Go module proxy and cached by version (~/.cache/opsledger/crds/).

Only the module's zip is downloaded (`go mod download`): Argo CD's release needs a newer Go than
the machine's to build, which `go mod download` reports and the zip does not need.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

from opsledger.devenv.paths import cache_dir

# name → (Go module, version, the CRD's path in the module)
EXTERNAL_CRDS = {
    "argocd-appproject": (
        "github.com/argoproj/argo-cd/v3",
        "v3.6.1",
        "manifests/crds/appproject-crd.yaml",
    ),
    # Flux v2.7: the release of kustomize-controller tools/flux builds and the tests run.
    "flux-kustomization": (
        "github.com/fluxcd/kustomize-controller",
        "v1.7.3",
        "config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
    ),
    "flux-helmrelease": (
        "github.com/fluxcd/helm-controller",
        "v1.4.3",
        "config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml",
    ),
    # The source kinds kustomize-controller watches (it starts only when they are served).
    **{
        f"flux-{kind}": (
            "github.com/fluxcd/source-controller",
            "v1.7.3",
            f"config/crd/bases/source.toolkit.fluxcd.io_{kind}.yaml",
        )
        for kind in ("externalartifacts", "gitrepositories", "ocirepositories", "buckets")
    },
}
FLUX_CONTROLLER_CRDS = (
    "flux-kustomization",
    "flux-externalartifacts",
    "flux-gitrepositories",
    "flux-ocirepositories",
    "flux-buckets",
)


def external_crd(name: str) -> Path:
    """The CRD file `name` (a key of EXTERNAL_CRDS), fetched once per version."""
    module, version, inside = EXTERNAL_CRDS[name]
    target = cache_dir() / "crds" / f"{module.replace('/', '_')}@{version}" / Path(inside).name
    if target.is_file():
        return target
    modcache = cache_dir() / "gomod"
    modcache.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOMODCACHE": str(modcache),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "GO111MODULE": "on",
    }
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cache_dir(),
        timeout=600,
        check=False,
    )
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"go mod download {module}@{version}: {done.stderr[-500:]}") from exc
    archive = Path(info.get("Zip") or "")
    if not archive.is_file():  # a go-version complaint still leaves the zip: anything else not
        raise RuntimeError(f"go mod download {module}@{version}: {info.get('Error')}")
    with zipfile.ZipFile(archive) as zipped:
        data = zipped.read(f"{module}@{version}/{inside}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target
