#!/usr/bin/env bash
# Build the pinned Go tools OpsLedger runs locally (control plane, etcd, helm, kwok, Prometheus,
# Gitea, the forge the pull-request tests run against, Flux's kustomize-controller, and krew).
#
#   tools/build.sh [kubernetes|etcd|helm|prometheus|gitea|flux|krew ...]   (default: all)
#
# Binaries land in $OPSLEDGER_CACHE/bin/<component>-<version>/ (default cache: ~/.cache/opsledger),
# with the Go module and build caches beside them, so a warm machine rebuilds nothing.
# A component is rebuilt only when its version or its go.mod/go.sum changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${OPSLEDGER_CACHE:-$HOME/.cache/opsledger}"
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" GOFLAGS="-mod=mod" CGO_ENABLED="${CGO_ENABLED:-0}"
mkdir -p "$cache/bin" "$cache/logs"

say() { printf '[tools] %s\n' "$*" >&2; }

k8s_ldflags() {
  local v="v$KUBERNETES_VERSION" major minor
  major="${KUBERNETES_VERSION%%.*}"; minor="$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
  local f="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$f"
}

# build COMPONENT VERSION EXPECTED_MINUTES "name=package[|ldflags]" ...
build() {
  local component="$1" version="$2" minutes="$3"; shift 3
  local dir="$here/$component" out="$cache/bin/$component-$version"
  local key; key="$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)"
  if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$key" ]]; then
    say "$component $version: cached in $out"
    return 0
  fi
  mkdir -p "$out"
  local log="$cache/logs/build-$component-$version.log" start=$SECONDS
  say "$component $version: building (a cold build takes about $minutes min on 2 cores; log: $log)"
  : >"$log"
  local spec name pkg flags
  for spec in "$@"; do
    name="${spec%%=*}"; pkg="${spec#*=}"; flags="-s -w"
    if [[ "$pkg" == *"|"* ]]; then flags="${pkg#*|}"; pkg="${pkg%%|*}"; fi
    say "  go build $name ($((SECONDS - start))s elapsed)"
    if ! (cd "$dir" && go build -trimpath ${BUILD_TAGS:+-tags "$BUILD_TAGS"} -ldflags="$flags" \
          -o "$out/$name" "$pkg") >>"$log" 2>&1; then
      say "FAILED: go build $pkg for $component $version; see $log"
      tail -n 20 "$log" >&2
      return 1
    fi
  done
  echo "$key" >"$out/.stamp"
  say "$component $version: built in $((SECONDS - start))s -> $out"
}

build_kubernetes() {
  local fl; fl="$(k8s_ldflags)"
  build kubernetes "$KUBERNETES_VERSION" 12 \
    "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver|$fl" \
    "kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager|$fl" \
    "kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler|$fl" \
    "kubectl=k8s.io/kubernetes/cmd/kubectl|$fl"
}

build_etcd() {
  build etcd "$ETCD_VERSION" 1 "etcd=go.etcd.io/etcd/server/v3"
}

build_helm() {
  build helm "$HELM_VERSION" 4 \
    "helm=helm.sh/helm/v4/cmd/helm|-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
    "kwok=sigs.k8s.io/kwok/cmd/kwok|-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
}

build_prometheus() {
  local pv="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
  pv+=" -X github.com/prometheus/common/version.Branch=HEAD -X github.com/prometheus/common/version.Revision=module"
  build prometheus "$PROMETHEUS_VERSION" 8 \
    "prometheus=github.com/prometheus/prometheus/cmd/prometheus|$pv" \
    "promtool=github.com/prometheus/prometheus/cmd/promtool|$pv"
}

build_gitea() {
  # sqlite through cgo (mattn/go-sqlite3): the forge tests run Gitea on a file database.
  CGO_ENABLED=1 BUILD_TAGS="sqlite sqlite_unlock_notify" build gitea "$GITEA_VERSION" 4 \
    "gitea=code.gitea.io/gitea|-s -w -X main.Version=$GITEA_VERSION"
}

build_flux() {
  # Flux's kustomize-controller: the change-calendar tests run it against the real API server.
  build flux "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" 8 \
    "kustomize-controller=github.com/fluxcd/kustomize-controller"
}

build_krew() {
  # krew, kubectl's plugin manager: the plugin test installs kubectl-itsm from the krew manifest.
  build krew "$KREW_VERSION" 1 "kubectl-krew=sigs.k8s.io/krew/cmd/krew"
}

components=("$@")
[[ ${#components[@]} -eq 0 ]] && components=(kubernetes etcd helm prometheus gitea flux krew)
total=$SECONDS
for c in "${components[@]}"; do
  case "$c" in
    kubernetes|etcd|helm|prometheus|gitea|flux|krew) "build_$c" ;;
    *) say "unknown component '$c' (choose from: kubernetes etcd helm prometheus gitea flux krew)"; exit 2 ;;
  esac
done
say "tools ready in $((SECONDS - total))s"
