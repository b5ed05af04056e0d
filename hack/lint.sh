#!/usr/bin/env bash
# Runs golangci-lint, built from the Go module proxy and cached outside the clone.
set -euo pipefail
VERSION="${GOLANGCI_LINT_VERSION:-v2.15.0}"
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"
BIN="${CACHE_ROOT}/golangci-lint/${VERSION}"
if [[ ! -x "${BIN}/golangci-lint" ]]; then
  echo "lint: building golangci-lint ${VERSION}" >&2
  GOBIN="${BIN}" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@${VERSION}"
fi
exec "${BIN}/golangci-lint" run ./... "$@"
