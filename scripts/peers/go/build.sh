#!/usr/bin/env bash
# Build the Go peer in GOPATH mode against Debian's gorilla/websocket
# (/usr/share/gocode/src/github.com/gorilla/websocket): no modules, no proxy,
# no network. Usage: scripts/peers/go/build.sh OUTPUT_BINARY
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: build.sh OUTPUT_BINARY}"
mkdir -p "$(dirname "$OUT")"
export GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-$(dirname "$OUT")/.gocache}"
cd "$HERE"
go build -o "$OUT" server.go
