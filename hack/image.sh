#!/usr/bin/env bash
# Builds the repository's Dockerfile with no Docker daemon (Debian's buildah,
# chroot isolation) into a docker-archive image, the form
# `ctr images import` and `docker load` read.
#
#   hack/image.sh [OUT.tar]      default: bin/backstop-image.tar
#
# Env: IMG (the image's name, default ghcr.io/backstop-io/backstop:dev),
#      PG_CLIENT (pgdg or debian; default debian here, see the Dockerfile),
#      REMOTE_BASES=1 to pull the Dockerfile's public base images instead of
#      making them.
#
# Where no registry is reachable the base images are made locally: Debian
# bookworm by debootstrap (from the mirror this machine's apt uses), and the
# Go image from it plus this machine's Go toolchain. They are passed to the
# Dockerfile as GO_IMAGE and BASE_IMAGE; the Dockerfile itself stays what
# `docker build` builds anywhere. The rootfs is cached outside the clone;
# the Go module and build caches are mounted into the build so a rebuild
# compiles only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

IMG="${IMG:-ghcr.io/backstop-io/backstop:dev}"
PG_CLIENT="${PG_CLIENT:-debian}"
OUT="${1:-bin/backstop-image.tar}"
SUITE=bookworm
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"
GO_VERSION="$(go env GOVERSION)"
# RECIPE numbers the recipe of the bases below and is part of their names,
# so a changed recipe makes new bases instead of reusing the old ones.
RECIPE=3
BASE_IMAGE="localhost/backstop-base/debian:${SUITE}-${RECIPE}"
GO_IMAGE="localhost/backstop-base/golang:${GO_VERSION#go}-${SUITE}-${RECIPE}"

log() { echo "image: $*" >&2; }

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  sudo=""; [[ "$(id -u)" -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# The first archive this machine's apt takes suite $1 from (one-line or
# deb822 sources), or $2 when there is none.
apt_mirror() {
  local found
  found="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk -v want="$1" '
      function emit(uri, suites,   n, i, s) {
        n = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++) if (s[i] == want) { print uri; done = 1; exit }
      }
      /^deb / { for (i = 2; i < NF; i++) if ($i ~ /^https?:\/\//) { emit($i, $(i + 1)); break }; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { suites = $0; sub(/^Suites:[ \t]*/, "", suites) }
      /^[ \t]*$/ { if (uri != "") emit(uri, suites); uri = ""; suites = "" }
      END { if (!done && uri != "") emit(uri, suites) }')"
  echo "${found:-$2}"
}

# debian_sources is the apt configuration of the public debian:bookworm
# image: the release, its updates and its security archive. debootstrap
# writes only the release, whose packages lack the security fixes (and
# would give the image a PostgreSQL older than the servers it meets).
debian_sources() {
  cat <<EOF
Types: deb
URIs: $1
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $2
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

make_bases() {
  local rootfs_tar="${CACHE_ROOT}/images/debian-${SUITE}-minbase-${RECIPE}.tar"
  if ! have_image "${BASE_IMAGE}"; then
    if [[ ! -s "${rootfs_tar}" ]]; then
      local dir; dir="$(mktemp -d)"
      log "debootstrap ${SUITE} (minbase; a few minutes, once)"
      mkdir -p "${CACHE_ROOT}/images"
      local mirror security
      mirror="$(apt_mirror "${SUITE}" http://deb.debian.org/debian)"
      security="$(apt_mirror "${SUITE}-security" http://deb.debian.org/debian-security)"
      debootstrap --variant=minbase "${SUITE}" "${dir}/rootfs" "${mirror}" >"${dir}/debootstrap.log" 2>&1 ||
        { tail -n 20 "${dir}/debootstrap.log" >&2; rm -rf "${dir}"; exit 1; }
      rm -f "${dir}/rootfs/etc/apt/sources.list"
      debian_sources "${mirror}" "${security}" >"${dir}/rootfs/etc/apt/sources.list.d/debian.sources"
      rm -rf "${dir}/rootfs/var/cache/apt/archives/"*.deb "${dir}/rootfs/var/lib/apt/lists/"*
      tar -C "${dir}/rootfs" --numeric-owner -cf "${rootfs_tar}.tmp" .
      mv "${rootfs_tar}.tmp" "${rootfs_tar}"
      rm -rf "${dir}"
      # Earlier recipes' rootfs are not used again.
      find "${CACHE_ROOT}/images" -maxdepth 1 -name "debian-${SUITE}-minbase*.tar" ! -name "$(basename "${rootfs_tar}")" -delete
    fi
    local c; c="$(buildah from scratch)"
    buildah add --quiet "$c" "${rootfs_tar}" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
    # The updates and security fixes since the release, as a current public
    # base image has them.
    log "upgrading the packages of ${BASE_IMAGE}"
    # --error-on=any: an archive that cannot be read fails the build,
    # rather than leave a base without its fixes, cached for good.
    buildah run --isolation chroot "$c" -- sh -c \
      'apt-get update -qq --error-on=any && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean && rm -rf /var/lib/apt/lists/*' >&2 ||
      { buildah rm "$c" >/dev/null; exit 1; }
    buildah commit --quiet "$c" "${BASE_IMAGE}" >/dev/null
    buildah rm "$c" >/dev/null
    log "made ${BASE_IMAGE}"
  fi
  if ! have_image "${GO_IMAGE}"; then
    local c; c="$(buildah from --pull=never "${BASE_IMAGE}")"
    buildah copy --quiet "$c" "$(go env GOROOT)" /usr/local/go >/dev/null
    # GOPROXY=off: modules come from this machine's module cache, mounted
    # into the build (the base has no CA certificates to fetch them).
    buildah config --env GOPATH=/go --env GOCACHE=/go/build-cache --env GOTOOLCHAIN=local --env GOPROXY=off \
      --env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
    buildah commit --quiet "$c" "${GO_IMAGE}" >/dev/null
    buildah rm "$c" >/dev/null
    log "made ${GO_IMAGE} (${GO_VERSION})"
  fi
}

args=(--isolation chroot --layers --build-arg "PG_CLIENT=${PG_CLIENT}" --build-arg "VERSION=${VERSION:-dev}")
if [[ "${REMOTE_BASES:-}" == 1 ]]; then
  args+=(--pull)
else
  make_bases
  # The module and build caches of this machine, mounted, not copied: the
  # image's layers do not change, only the compile gets faster.
  gomodcache="$(go env GOMODCACHE)"; gocache="$(go env GOCACHE)"
  mkdir -p "${gomodcache}" "${gocache}"
  go mod download
  args+=(--pull=never --build-arg "GO_IMAGE=${GO_IMAGE}" --build-arg "BASE_IMAGE=${BASE_IMAGE}"
         --volume "${gomodcache}:/go/pkg/mod" --volume "${gocache}:/go/build-cache")
fi

log "building ${IMG} (PG_CLIENT=${PG_CLIENT})"
build_log="$(mktemp)"
if ! buildah bud "${args[@]}" -t "${IMG}" -f Dockerfile . >"${build_log}" 2>&1; then
  tail -n 40 "${build_log}" >&2
  rm -f "${build_log}"
  exit 1
fi
rm -f "${build_log}"
mkdir -p "$(dirname "${OUT}")"
rm -f "${OUT}.tmp"
buildah push --quiet "${IMG}" "docker-archive:${OUT}.tmp:${IMG}" >&2
mv "${OUT}.tmp" "${OUT}"
log "wrote ${OUT} ($(du -h "${OUT}" | cut -f1))"
echo "${OUT}"
