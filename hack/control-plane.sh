#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, etcd)
# from the Go module proxy and caches it outside the clone, keyed by version.
# Prints the directory holding the binaries (use it as KUBEBUILDER_ASSETS).
# With --kubectl it also builds kubectl there (the demo uses it); with --node
# also kubelet, kube-scheduler and kube-proxy (the real-node suite uses them).
#
# k8s.io/kubernetes and etcd's server module carry replace directives, so
# `go install mod@version` refuses them; a throwaway wrapper module that
# requires them (and pins every staging module to its published version)
# builds them instead.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"
OUT="${CACHE_ROOT}/control-plane/${KUBE_VERSION}-etcd${ETCD_VERSION}"

log() { echo "control-plane: $*" >&2; }

want=(kube-apiserver kube-controller-manager)
for arg in "$@"; do
  case "${arg}" in
    --kubectl) want+=(kubectl) ;;
    --node) want+=(kubectl kubelet kube-scheduler kube-proxy) ;;
    *) log "unknown argument ${arg}"; exit 2 ;;
  esac
done

missing=()
for cmd in "${want[@]}"; do
  [[ -x "${OUT}/${cmd}" ]] || missing+=("${cmd}")
done
if [[ -x "${OUT}/etcd" && ${#missing[@]} -eq 0 ]]; then
  echo "${OUT}"
  exit 0
fi
mkdir -p "${OUT}"
# One build at a time (test packages may ask at once); the next finds it done.
exec 9>"${OUT}.lock"
flock 9
missing=()
for cmd in "${want[@]}"; do
  [[ -x "${OUT}/${cmd}" ]] || missing+=("${cmd}")
done

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
patch="${KUBE_VERSION##*.}"
staging_version="v0.${minor}.${patch}"

build_kube() {
  local dir="${work}/kube"
  mkdir -p "${dir}"
  cd "${dir}"
  go mod init backstop.local/control-plane-kube >/dev/null 2>&1
  # The staging modules k8s.io/kubernetes replaces with ./staging/src/...
  local mod_file
  mod_file="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  local staging
  staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "${mod_file}")"
  go mod edit -require="k8s.io/kubernetes@${KUBE_VERSION}"
  for m in ${staging}; do
    go mod edit -replace="${m}=${m}@${staging_version}"
  done
  # The go directive must be at least what kubernetes asks for.
  go mod edit -go="$(sed -n 's/^go \(.*\)/\1/p' "${mod_file}")"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
  for cmd in "${missing[@]}"; do
    log "building ${cmd} ${KUBE_VERSION} (several minutes on a cold cache)"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${OUT}/${cmd}.tmp" "k8s.io/kubernetes/cmd/${cmd}"
    mv "${OUT}/${cmd}.tmp" "${OUT}/${cmd}"
  done
}

build_etcd() {
  local dir="${work}/etcd"
  mkdir -p "${dir}"
  cd "${dir}"
  go mod init backstop.local/control-plane-etcd >/dev/null 2>&1
  go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3/etcdmain"
GO
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  GOFLAGS=-mod=mod go mod tidy >/dev/null
  log "building etcd ${ETCD_VERSION}"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${OUT}/etcd.tmp" .
  mv "${OUT}/etcd.tmp" "${OUT}/etcd"
}

[[ -x "${OUT}/etcd" ]] || build_etcd
[[ ${#missing[@]} -eq 0 ]] || build_kube
echo "${OUT}"
