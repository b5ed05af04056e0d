#!/usr/bin/env bash
# Builds fake-gcs-server (a Google Cloud Storage emulator) from the Go module
# proxy and caches it outside the clone, keyed by version:
#   ${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}/fake-gcs-server/<version>/fake-gcs-server
# Prints the path of the binary.
#
# `go install mod@version` refuses modules with replace directives; when that
# happens the build goes through a throwaway wrapper module instead.
set -euo pipefail

FAKE_GCS_VERSION="${FAKE_GCS_VERSION:-v1.56.1}"
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"
OUT="${CACHE_ROOT}/fake-gcs-server/${FAKE_GCS_VERSION}"
MOD="github.com/fsouza/fake-gcs-server"

log() { echo "fake-gcs.sh: $*" >&2; }

if [[ -x "${OUT}/fake-gcs-server" ]]; then
  echo "${OUT}/fake-gcs-server"
  exit 0
fi

work=""
tmpbin=""
cleanup() {
  [[ -n "${work}" ]] && rm -rf "${work}"
  [[ -n "${tmpbin}" ]] && rm -rf "${tmpbin}"
  return 0
}
trap cleanup EXIT

mkdir -p "${OUT}"
# Test packages run in parallel: one builds, the others wait for it.
if command -v flock >/dev/null; then
  exec 9>"${OUT}/.lock"
  flock 9
  if [[ -x "${OUT}/fake-gcs-server" ]]; then
    echo "${OUT}/fake-gcs-server"
    exit 0
  fi
fi
tmpbin="$(mktemp -d "${OUT}/.build.XXXXXX")"
log "building ${MOD}@${FAKE_GCS_VERSION} (a minute or two on a cold cache)"
if ! GOBIN="${tmpbin}" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" "${MOD}@${FAKE_GCS_VERSION}"; then
  log "go install failed; building through a wrapper module"
  work="$(mktemp -d)"
  (
    cd "${work}"
    go mod init backstop.local/wrap-fake-gcs >/dev/null 2>&1
    go mod edit -require="${MOD}@${FAKE_GCS_VERSION}"
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "${MOD}" > tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${tmpbin}/fake-gcs-server" "${MOD}"
  )
fi
mv "${tmpbin}/fake-gcs-server" "${OUT}/fake-gcs-server"
echo "${OUT}/fake-gcs-server"
