#!/usr/bin/env bash
# Soak test: 64 clients with mixed requests while files change underneath (see tests/src/bin/soak.rs).
# Usage: scripts/soak.sh [SECONDS] [CLIENTS]   (defaults: 120 s, 64 clients)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
exec cargo run --quiet -p qwen-env-tests --bin soak -- "${1:-120}" "${2:-64}"
