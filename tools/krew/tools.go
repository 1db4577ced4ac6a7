//go:build tools

// Package tools pins krew, kubectl's plugin manager, which tools/build.sh compiles: the plugin
// test installs kubectl-itsm from the repository's krew manifest with it.
package tools

import (
	_ "sigs.k8s.io/krew/cmd/krew"
)
