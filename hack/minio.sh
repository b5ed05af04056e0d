#!/usr/bin/env bash
# Builds the MinIO server and the age CLI (age, age-keygen) from the Go module
# proxy and caches them outside the clone, keyed by version:
#   ${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}/minio/<version>/minio
#   ${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}/age/<version>/{age,age-keygen}
# Prints the path of the minio binary; with --age, the path of the age binary
# (age-keygen sits next to it).
#
# MinIO publishes no semver tags, so the version is a pseudo-version: the newest
# the proxy has (`go list -m github.com/minio/minio@latest`) that builds.
# `go install mod@version` refuses modules with replace directives; when that
# happens the build goes through a throwaway wrapper module instead.
set -euo pipefail

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
AGE_VERSION="${AGE_VERSION:-v1.3.2}"
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"
MINIO_OUT="${CACHE_ROOT}/minio/${MINIO_VERSION}"
AGE_OUT="${CACHE_ROOT}/age/${AGE_VERSION}"

log() { echo "minio.sh: $*" >&2; }

work=""
cleanup() { [[ -n "${work}" ]] && rm -rf "${work}"; return 0; }
trap cleanup EXIT

# build <module> <version> <out-dir> <package>...
# Installs each package's binary into <out-dir>.
build() {
  local mod="$1" version="$2" out="$3"
  shift 3
  mkdir -p "${out}"
  local tmpbin
  tmpbin="$(mktemp -d "${out}/.build.XXXXXX")"
  log "building ${mod}@${version} (a few minutes on a cold cache)"
  local pkgs=()
  for p in "$@"; do pkgs+=("${p}@${version}"); done
  if ! GOBIN="${tmpbin}" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" "${pkgs[@]}"; then
    log "go install failed; building through a wrapper module"
    work="$(mktemp -d)"
    (
      cd "${work}"
      go mod init backstop.local/wrap >/dev/null 2>&1
      go mod edit -require="${mod}@${version}"
      {
        echo "//go:build tools"
        echo
        echo "package tools"
        echo
        for p in "$@"; do echo "import _ \"${p}\""; done
      } > tools.go
      GOFLAGS=-mod=mod go mod tidy >/dev/null
      for p in "$@"; do
        GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${tmpbin}/$(basename "${p}")" "${p}"
      done
    )
  fi
  for p in "$@"; do
    mv "${tmpbin}/$(basename "${p}")" "${out}/$(basename "${p}")"
  done
  rm -rf "${tmpbin}"
}

if [[ ! -x "${MINIO_OUT}/minio" ]]; then
  build github.com/minio/minio "${MINIO_VERSION}" "${MINIO_OUT}" github.com/minio/minio
fi
if [[ ! -x "${AGE_OUT}/age" || ! -x "${AGE_OUT}/age-keygen" ]]; then
  build filippo.io/age "${AGE_VERSION}" "${AGE_OUT}" filippo.io/age/cmd/age filippo.io/age/cmd/age-keygen
fi

if [[ "${1:-}" == "--age" ]]; then
  echo "${AGE_OUT}/age"
else
  echo "${MINIO_OUT}/minio"
fi
