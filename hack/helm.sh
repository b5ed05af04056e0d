#!/usr/bin/env bash
# Builds Helm 3, Helm 4 and kustomize from the Go module proxy and caches them
# outside the clone, keyed by version:
#   ${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}/helm/<version>/helm
#   ${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}/kustomize/<version>/kustomize
#
# Usage: hack/helm.sh [v3|v4|kustomize]...
# Prints the path of each binary asked for, one per line, in the order asked;
# with no argument: Helm 3, Helm 4, kustomize.
#
# The versions are pinned (the newest of each major when last bumped, that
# builds with the Go of go.mod: kustomize v5.8.3 wants a newer Go); set a
# version variable to "latest" to take the newest the proxy has. Helm 4 is
# skipped (and its line left out) when HELM4_VERSION=none.
#
# `go install mod@version` refuses modules with replace directives; when that
# happens the build goes through a throwaway wrapper module instead (the
# pattern of hack/control-plane.sh).
set -euo pipefail

HELM3_VERSION="${HELM3_VERSION:-v3.22.0}"
HELM4_VERSION="${HELM4_VERSION:-v4.3.1}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"

log() { echo "helm.sh: $*" >&2; }

work=""
cleanup() { [[ -n "${work}" ]] && rm -rf "${work}"; return 0; }
trap cleanup EXIT

# resolve <module> <version>: "latest" becomes the newest version in the proxy.
resolve() {
  local mod="$1" version="$2"
  if [[ "${version}" != "latest" ]]; then
    echo "${version}"
    return
  fi
  (cd / && GOFLAGS=-mod=mod go list -m -f '{{.Version}}' "${mod}@latest")
}

# binname <package>: the name `go install` gives its binary (a trailing major
# version element like /v5 is not part of it).
binname() {
  local name
  name="$(basename "$1")"
  if [[ "${name}" =~ ^v[0-9]+$ ]]; then
    name="$(basename "$(dirname "$1")")"
  fi
  echo "${name}"
}

# build <module> <version> <out-file> <package> [ldflags]
build() {
  local mod="$1" version="$2" out="$3" pkg="$4" ldflags="-s -w ${5:-}"
  local dir
  dir="$(dirname "${out}")"
  mkdir -p "${dir}"
  local tmpbin
  tmpbin="$(mktemp -d "${dir}/.build.XXXXXX")"
  log "building ${pkg}@${version} (a few minutes on a cold cache)"
  if ! GOBIN="${tmpbin}" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "${ldflags}" "${pkg}@${version}" 2>"${tmpbin}/install.log"; then
    log "go install refused ($(tail -n 1 "${tmpbin}/install.log")); building through a wrapper module"
    work="$(mktemp -d)"
    (
      cd "${work}"
      go mod init backstop.local/wrap >/dev/null 2>&1
      go mod edit -require="${mod}@${version}"
      printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "${pkg}" > tools.go
      GOFLAGS=-mod=mod go mod tidy >/dev/null
      GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${tmpbin}/$(binname "${pkg}")" "${pkg}"
    )
    rm -rf "${work}"
    work=""
  fi
  mv "${tmpbin}/$(binname "${pkg}")" "${out}"
  rm -rf "${tmpbin}"
}

helm_path() {
  local major="$1" version="$2"
  version="$(resolve "helm.sh/helm/${major}" "${version}")"
  local out="${CACHE_ROOT}/helm/${version}/helm"
  if [[ ! -x "${out}" ]]; then
    local ldflags="-X helm.sh/helm/${major}/internal/version.version=${version}"
    if [[ "${major}" == "v3" ]]; then
      # As Helm's Makefile does: the default Kubernetes version (of `helm
      # template` and `helm lint`) is that of the client-go Helm is built with,
      # not the v1.20 fallback in the source.
      local mod_file k8s minor
      mod_file="$(cd / && go mod download -json "helm.sh/helm/v3@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
      k8s="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "${mod_file}" | head -n 1)"
      if [[ -n "${k8s}" ]]; then
        for pkg in pkg/lint/rules pkg/chartutil; do
          ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${k8s}"
        done
      fi
    fi
    build "helm.sh/helm/${major}" "${version}" "${out}" "helm.sh/helm/${major}/cmd/helm" "${ldflags}"
  fi
  echo "${out}"
}

kustomize_path() {
  local version
  version="$(resolve sigs.k8s.io/kustomize/kustomize/v5 "${KUSTOMIZE_VERSION}")"
  local out="${CACHE_ROOT}/kustomize/${version}/kustomize"
  if [[ ! -x "${out}" ]]; then
    build sigs.k8s.io/kustomize/kustomize/v5 "${version}" "${out}" sigs.k8s.io/kustomize/kustomize/v5
  fi
  echo "${out}"
}

[[ $# -gt 0 ]] || set -- v3 v4 kustomize
for what in "$@"; do
  case "${what}" in
    v3) helm_path v3 "${HELM3_VERSION}" ;;
    v4) [[ "${HELM4_VERSION}" == "none" ]] || helm_path v4 "${HELM4_VERSION}" ;;
    kustomize) kustomize_path ;;
    *) log "unknown tool ${what}; want v3, v4 or kustomize"; exit 2 ;;
  esac
done
