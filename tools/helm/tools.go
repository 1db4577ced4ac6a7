//go:build tools

// Package tools pins the helm and kwok commands that tools/build.sh compiles.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
