#!/usr/bin/env bash
# The test command (README, .ci/run): type-check, build, make sure the pinned Envoy is installed
# (end-to-end tests run the real binary), run every jest suite, print the suites' summary lines
# (attack tallies, differential case counts, revocation times: test/support/run-summary.ts), and
# close with one plain line "N passed, N failed, N skipped" that CI reads.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

npx tsc -p tsconfig.json
npx tsc -p tsconfig.test.json --noEmit
bash scripts/install-envoy.sh >/dev/null

report="$(mktemp -t exitgate-jest-XXXXXX.json)"
export EXITGATE_TEST_SUMMARY="$(mktemp -t exitgate-summary-XXXXXX.txt)"
trap 'rm -f "$report" "$EXITGATE_TEST_SUMMARY"' EXIT
status=0
npx jest --ci --json --outputFile="$report" "$@" || status=$?

if [ -s "$EXITGATE_TEST_SUMMARY" ]; then
  echo
  echo "summary of the security and differential suites:"
  cat "$EXITGATE_TEST_SUMMARY"
  echo
fi

node -e '
const r = require(process.argv[1]);
const skipped = r.numPendingTests + r.numTodoTests;
if (r.numTotalTests === 0) { console.log("no tests ran"); process.exit(1); }
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || status=1
exit "$status"
