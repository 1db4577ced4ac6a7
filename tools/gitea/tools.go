//go:build tools

// Package tools pins Gitea, the forge the tests open and merge pull requests on.
package tools

import (
	_ "code.gitea.io/gitea"
)
