#!/usr/bin/env bash
# Runs the end-to-end tests of cmd/ssehub against the real binary: the demo
# page in headless Chromium (playwright-core) and a Node client (eventsource),
# with node's test runner. Installs what is missing: Debian's chromium, and
# the npm packages pinned in package-lock.json. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
	echo "e2e: installing chromium" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error

bin_dir=$(mktemp -d)
trap 'rm -rf "$bin_dir"' EXIT
(cd .. && go build -o "$bin_dir/ssehub" ./cmd/ssehub)

# One file at a time: the machine is small and the browser is the heaviest.
SSEHUB_BIN="$bin_dir/ssehub" node --test --test-concurrency=1 --test-reporter=spec tests/*.test.js
