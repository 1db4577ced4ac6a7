//go:build tools

// Package tools pins the Flux controller that tools/build.sh compiles: kustomize-controller,
// which the change-calendar tests run against the real API server.
package tools

import (
	_ "github.com/fluxcd/kustomize-controller"
)
