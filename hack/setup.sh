#!/usr/bin/env bash
# Installs and builds everything `make test` (hack/setup.sh test) or
# `make demo` (hack/setup.sh demo) needs on a Debian machine with Go, so
# that each is the whole set-up and no test meets a missing tool (or a cold
# build inside its deadline). Debian packages come from apt; every other
# tool is built from the Go module proxy (or npm) and cached outside the
# clone, keyed by version, so a warm machine skips all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"
case "${what}" in test | demo) ;; *) echo "usage: hack/setup.sh [test|demo]" >&2; exit 2 ;; esac
log() { echo "setup: $*" >&2; }
start=${SECONDS}

need_apt=()
want_cmd() { command -v "$1" >/dev/null || [[ -x "/usr/sbin/$1" ]] || need_apt+=("$2"); }
want_cmd make make
want_cmd git git
want_cmd runuser util-linux
want_cmd pg_dump postgresql-client
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
want_cmd zstd zstd
if [[ "${what}" == test ]]; then
  want_cmd mariadbd mariadb-server
  want_cmd mariadb-dump mariadb-client
  want_cmd npm "nodejs npm" # Azurite, the Azure Blob emulator
  # The real node: containerd, runc, the CNI plugins, iptables; the image
  # builder and the base image maker.
  want_cmd containerd containerd
  want_cmd runc runc
  [[ -x /usr/lib/cni/bridge ]] || need_apt+=(containernetworking-plugins)
  want_cmd iptables iptables
  want_cmd ip iproute2
  want_cmd buildah buildah
  want_cmd debootstrap debootstrap
fi

if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  # Packages only; the tests start their own servers. Keep Debian's
  # maintainer scripts from starting system services.
  added_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2068 # "nodejs npm" is two packages
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ${need_apt[@]} >/dev/null
  [[ -z "${added_policy}" ]] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# quietly runs one step and shows its output (module downloads, compiler
# lines) only when it fails: a newcomer sees the steps, not the noise.
quietly() {
  local out
  out="$(mktemp)"
  if ! "$@" >"${out}" 2>&1; then
    cat "${out}" >&2
    rm -f "${out}"
    return 1
  fi
  rm -f "${out}"
}

log "Go modules"
quietly go mod download
if [[ "${what}" == demo ]]; then
  log "control plane and kubectl (several minutes the first time)"
  quietly bash hack/control-plane.sh --kubectl
  log "MinIO"
  quietly bash hack/minio.sh
else
  log "control plane and node binaries (kubelet, kube-scheduler, kube-proxy)"
  quietly bash hack/control-plane.sh --node
  log "MinIO and age"
  quietly bash hack/minio.sh
  quietly bash hack/minio.sh --age
  log "Helm 3, Helm 4 and kustomize"
  quietly bash hack/helm.sh
  log "promtool (the alert rule tests)"
  quietly bash hack/promtool.sh
  log "storage emulators (fake-gcs-server, Azurite)"
  quietly bash hack/fake-gcs.sh
  quietly bash hack/azurite.sh
  log "the image, from the Dockerfile"
  quietly bash hack/image.sh
fi
log "done in $((SECONDS - start))s"
