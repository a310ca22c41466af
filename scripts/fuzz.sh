#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]
#
# Why RUSTC_BOOTSTRAP=1: cargo-fuzz builds with nightly-only flags (-Zsanitizer=address and the
# sancov passes libFuzzer needs). Only a stable toolchain is installed here and in CI, and none can be
# fetched, so we let the stable compiler accept those flags. It is the same compiler; nothing else
# in the build is affected, and the main workspace never sees the variable.
#
# The seed corpus in fuzz/corpus/<target>/ is read-only input; what libFuzzer discovers goes to
# fuzz/target/corpus/<target>/ (not committed). A crash leaves its input in fuzz/artifacts/<target>/:
# add it to the target's regression tests (tests/tests/malformed.rs or the seed corpus) and fix it.
#
# Environment: FUZZ_SANITIZER (address | none, default address), FUZZ_RSS_MB (per-run memory
# limit, default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

t0=$(date +%s)
cargo fuzz build --fuzz-dir fuzz -s "$sanitizer"
echo "fuzz: build took $(( $(date +%s) - t0 ))s"

failed=()
for t in "${targets[@]}"; do
  work="fuzz/target/corpus/$t"
  mkdir -p "$work" "fuzz/corpus/$t"
  dict=()
  case "$t" in
    jsonc | json5 | resolve) dict=(-dict=fuzz/dict/settings.dict) ;;
    dotenv) dict=(-dict=fuzz/dict/dotenv.dict) ;;
  esac
  echo "== fuzz $t for ${secs}s"
  s0=$(date +%s)
  # -timeout: one input may take at most 10 s; -rss_limit_mb: a leak or a huge allocation fails.
  if cargo fuzz run --fuzz-dir fuzz -s "$sanitizer" "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
      -print_final_stats=1 "${dict[@]}" \
      > "fuzz/target/$t.log" 2>&1; then
    echo "   ok in $(( $(date +%s) - s0 ))s: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/target/$t.log" | grep -o '[0-9]*$') runs, $(ls "$work" | wc -l) corpus inputs"
  else
    echo "   FAILED: see fuzz/target/$t.log; the input is in fuzz/artifacts/$t/" >&2
    tail -n 40 "fuzz/target/$t.log" >&2
    failed+=("$t")
  fi
done
echo "fuzz: total $(( $(date +%s) - t0 ))s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
