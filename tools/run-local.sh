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
cat >&2 <<MSG

OpsLedger is starting on the local control plane. In another shell:

    eval "\$($PWD/$opsledger dev env)"
    kubectl get itsm -A

Stop the operator with Ctrl-C; stop the environment with \`make dev-down\`.

MSG
exec $opsledger run
