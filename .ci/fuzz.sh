#!/usr/bin/env bash
# Runs every fuzz target of the repo (codec/fuzz: the frame decoder; mqtt-codec/fuzz:
# the MQTT packet decoder; fuzz/: the
# broker's connection state machine, the MQTT session and the management API) for a bounded time
# each, and fails if any of them does not build or crashes (a panic, a broken
# invariant, a sanitizer report, an input running over FUZZ_INPUT_TIMEOUT): the
# input is then in <crate>/artifacts/<target>/ and
# `cargo +nightly fuzz run <target> <file>` replays it. (Building them here is
# a check of its own: nothing else builds the fuzz crates, and decode_frame had
# stopped compiling unnoticed.)
#
#   FUZZ_SECONDS        time per target, after its build (default 60)
#   FUZZ_TARGETS        only these targets (space-separated names; default all)
#   FUZZ_INPUT_TIMEOUT  seconds one input may take before it counts as a hang (30)
#
# Needs a nightly toolchain (installed if missing) and cargo-fuzz (installed if
# missing). Corpora are kept in <crate>/corpus/<target>/ (git-ignored), so a
# second run starts where the first stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-60}
input_timeout=${FUZZ_INPUT_TIMEOUT:-30}

if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# The frame decoder's seed corpus: valid frame streams written by a codec test.
if [ -z "$(ls -A codec/fuzz/corpus/decode_frame 2>/dev/null)" ]; then
  RINGMQ_FUZZ_SEEDS=$PWD/codec/fuzz/corpus/decode_frame cargo test -q -p ringmq-codec --test fuzz_seeds
fi

# The MQTT decoder's: every packet of every version, as its round-trip test encodes them.
if [ -z "$(ls -A mqtt-codec/fuzz/corpus/decode_packet 2>/dev/null)" ]; then
  RINGMQ_MQTT_FUZZ_SEEDS=$PWD/mqtt-codec/fuzz/corpus/decode_packet cargo test -q -p ringmq-mqtt-codec --lib
fi

failed=()
for crate in codec/fuzz mqtt-codec/fuzz fuzz; do
  # Longest input: a few frames for the decoder; a script of up to 64 steps
  # for the broker's targets (longer inputs only repeat steps and run slower).
  case $crate in
    codec/fuzz | mqtt-codec/fuzz) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  for target in $(cd "$crate" && cargo +nightly fuzz list); do
    if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $target "* ]]; then
      continue
    fi
    echo "== fuzz $crate $target (${secs} s)"
    mkdir -p "$crate/corpus/$target" "$crate/artifacts/$target"
    # -len_control=0: inputs are scripts decoded with `arbitrary`; growing their
    # length from a few bytes (libFuzzer's default) wastes a short run on
    # scripts of one or two steps.
    if ! (cd "$crate" && cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$secs" -max_len="$max_len" -len_control=0 -timeout="$input_timeout" \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 -print_funcs=0); then
      failed+=("$crate/$target")
    fi
  done
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} failed to build or crashed (a crash's input is in its artifacts/ directory)" >&2
  exit 1
fi
echo "fuzz: every target ran ${secs} s without a crash"
