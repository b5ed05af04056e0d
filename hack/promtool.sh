#!/usr/bin/env bash
# Builds Prometheus's promtool (the rule checker and rule unit tester the
# chart's alert tests run) from the Go module proxy and caches it outside the
# clone, keyed by version:
#   ${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}/promtool/<version>/promtool
# Prints the binary's path.
#
# Prometheus v3.x.y is published as the Go module version v0.3xx.y (v3.16.0 is
# v0.316.0). Its go.mod carries replace directives, which `go install
# mod@version` refuses, so the build goes through a throwaway wrapper module
# that requires Prometheus and builds ./cmd/promtool (the pattern of
# hack/control-plane.sh).
set -euo pipefail

PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"
OUT="${CACHE_ROOT}/promtool/${PROMETHEUS_VERSION}/promtool"

log() { echo "promtool.sh: $*" >&2; }

if [[ -x "${OUT}" ]]; then
  echo "${OUT}"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "$(dirname "${OUT}")"
log "building promtool ${PROMETHEUS_VERSION} (several minutes on a cold cache)"
(
  cd "${work}"
  go mod init backstop.local/promtool >/dev/null 2>&1
  go mod edit -require="github.com/prometheus/prometheus@${PROMETHEUS_VERSION}"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/prometheus/prometheus/cmd/promtool"\n' > tools.go
  GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
  # The version promtool prints: v0.316.0 is Prometheus 3.16.0.
  minor="${PROMETHEUS_VERSION#v0.}"
  minor="${minor%%.*}"
  patch="${PROMETHEUS_VERSION##*.}"
  human="3.$((10#${minor} - 300)).${patch}"
  GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=${human}" \
    -o "${work}/promtool" github.com/prometheus/prometheus/cmd/promtool
)
mv "${work}/promtool" "${OUT}.tmp"
mv "${OUT}.tmp" "${OUT}"
echo "${OUT}"
