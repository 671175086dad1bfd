#!/usr/bin/env bash
# Installs and builds what `npm run bench` needs; idempotent (a second run only checks).
#   - Debian packages: squid and wrk (the data-plane peers and load generator)
#   - the pinned Envoy (scripts/install-envoy.sh, as the tests use)
#   - Go programs into dist-bench/bin: the go-control-plane peer (bench/gcp-peer), the origin
#     server and CONNECT harness (bench/loadtools), and stripe/smokescreen at a pinned version
# Nothing here is needed by the tests or CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/dist-bench/bin"
SMOKESCREEN_VERSION="v0.1.0"
mkdir -p "$BIN"

if ! command -v squid >/dev/null || ! command -v wrk >/dev/null; then
  echo "bench setup: installing squid and wrk (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq squid wrk >/dev/null
  # The package may start a system-wide squid on :3128; the benchmark runs its own instances.
  if command -v service >/dev/null; then service squid stop >/dev/null 2>&1 || true; fi
fi

bash "$ROOT/scripts/install-envoy.sh" >/dev/null

command -v go >/dev/null || { echo "bench setup: Go is required (go 1.26)" >&2; exit 1; }
# go build is incremental: a no-op when nothing changed.
(cd "$ROOT/bench/gcp-peer" && go build -trimpath -o "$BIN/gcp-peer" .)
(cd "$ROOT/bench/loadtools" && go build -trimpath -o "$BIN/" ./...)
(cd "$ROOT/bench/xds-load" && go build -trimpath -o "$BIN/xds-load" .)
if ! "$BIN/smokescreen" --version 2>/dev/null | grep -q "$SMOKESCREEN_VERSION"; then
  echo "bench setup: building stripe/smokescreen@$SMOKESCREEN_VERSION" >&2
  (cd "$ROOT" && GOBIN="$BIN" go install "github.com/stripe/smokescreen@$SMOKESCREEN_VERSION")
fi
echo "bench setup: ok ($BIN)" >&2
