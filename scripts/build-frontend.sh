#!/usr/bin/env bash
# Build the editor island (frontend/) into loopkit_web/static/editor when its sources changed.
# The wheel ships that output; setup.py refuses to build a wheel without it.
set -eu
cd "$(dirname "$0")/.."
[ -f frontend/package.json ] || exit 0
out=loopkit_web/static/editor/.built
if [ -f "$out" ] && [ -z "$(find frontend -path frontend/node_modules -prune -o -newer "$out" -type f -print | head -n 1)" ]; then
    exit 0
fi
(cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build --silent)
touch "$out"
