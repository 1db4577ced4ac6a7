#!/usr/bin/env bash
# `make run`: bring up the local environment, install the CRDs and examples, run the operator.
set -euo pipefail
cd "$(dirname "$0")/.."
opsledger=.venv/bin/opsledger
$opsledger dev up
eval "$($opsledger dev env)"
# A webhook left registered by an operator that was killed (not stopped) would refuse everything.
kubectl delete validatingwebhookconfiguration opsledger --ignore-not-found >/dev/null
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl apply -f examples/
# The service desk beside the operator: read-only without a sign-in proxy in front of it.
desk_port="${OPSLEDGER_DESK_PORT:-8090}"
$opsledger desk --bind-address 127.0.0.1 --port "$desk_port" --anonymous-read \
  >"${TMPDIR:-/tmp}/opsledger-desk.log" 2>&1 &
desk=$!
trap 'kill $desk 2>/dev/null || true' EXIT
cat >&2 <<MSG

OpsLedger is starting on the local control plane. In another shell:

    eval "\$($PWD/$opsledger dev env)"
    kubectl get itsm -A

The service desk: http://127.0.0.1:$desk_port/ (read-only here: no sign-in proxy in front).
Stop the operator with Ctrl-C; stop the environment with \`make dev-down\`.

MSG
$opsledger run
