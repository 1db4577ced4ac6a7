//go:build tools

// Package tools pins etcd's server command that tools/build.sh compiles.
package tools

import _ "go.etcd.io/etcd/server/v3"
