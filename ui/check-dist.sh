#!/usr/bin/env bash
# Rebuilds the dashboard from its sources and fails when the committed
# ui/dist differs from the fresh build (the server embeds ui/dist as committed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

stale() {
  echo "ui/dist is stale: run \`npm --prefix ui ci && npm --prefix ui run build\` and commit ui/dist" >&2
  exit 1
}

npm ci --no-audit --no-fund
npm run build

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "check-dist.sh: not inside a git work tree, cannot compare ui/dist" >&2
  exit 2
fi

# Changed or deleted tracked files, and new files git does not know yet.
if ! git diff --quiet --exit-code -- dist; then
  git --no-pager diff --stat -- dist >&2 || true
  stale
fi
if [ -n "$(git ls-files --others --exclude-standard -- dist)" ]; then
  git ls-files --others --exclude-standard -- dist >&2
  stale
fi
echo "ui/dist matches the sources"
