#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator) from the npm registry and
# caches it outside the clone, keyed by version:
#   ${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}/azurite/<version>/
# Prints the path of the azurite-blob launcher (run it with node on PATH).
# Needs node and npm.
set -euo pipefail

AZURITE_VERSION="${AZURITE_VERSION:-3.37.0}"
CACHE_ROOT="${BACKSTOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstop}"
OUT="${CACHE_ROOT}/azurite/${AZURITE_VERSION}"
BIN="${OUT}/node_modules/.bin/azurite-blob"

log() { echo "azurite.sh: $*" >&2; }

if [[ -x "${BIN}" ]]; then
  echo "${BIN}"
  exit 0
fi
command -v node >/dev/null || { log "node is not installed"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }

mkdir -p "$(dirname "${OUT}")"
# Test packages run in parallel: one installs, the others wait for it.
if command -v flock >/dev/null; then
  exec 9>"${OUT}.lock"
  flock 9
  if [[ -x "${BIN}" ]]; then
    echo "${BIN}"
    exit 0
  fi
fi
tmp="$(mktemp -d "${OUT}.tmp.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
log "installing azurite@${AZURITE_VERSION} from the npm registry"
npm install --prefix "${tmp}" --no-audit --no-fund --no-save --loglevel=error "azurite@${AZURITE_VERSION}" >&2
rm -rf "${OUT}"
mv "${tmp}" "${OUT}"
echo "${BIN}"
