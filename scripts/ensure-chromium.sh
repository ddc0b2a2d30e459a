#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (executable_path);
# Playwright's own browser download cannot work on these machines.
set -eu
if [ -x "${LOOPKIT_CHROMIUM:-/usr/bin/chromium}" ]; then exit 0; fi
if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "Chromium is missing: run 'sudo apt-get install -y chromium' (or set LOOPKIT_CHROMIUM)." >&2
    exit 1
fi
