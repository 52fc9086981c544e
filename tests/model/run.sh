#!/bin/bash
# Runs the model test (tests/model.rs) for many seeds and lists the failing ones.
#   tests/model/run.sh N [FIRST]   seeds FIRST..FIRST+N-1 (FIRST random if not given)
# Env: MODEL_OPS (operations per seed, default 300), JOBS (seeds run at once, default 1),
#      CARGO_PROFILE (e.g. "--release"; default the debug build), RINGMQ_TEST_URI as for the test.
# Each failing seed's output is kept in $OUT (default a temp dir) as seed-N.txt; reproduce one with
#   MODEL_SEED=N MODEL_OPS=... cargo test --test model -- --nocapture
set -euo pipefail
n=${1:?usage: run.sh N [FIRST]}
first=${2:-$(( (RANDOM << 15 | RANDOM) ))}
ops=${MODEL_OPS:-300}
jobs=${JOBS:-1}
cd "$(dirname "$0")/../.."
# shellcheck disable=SC2086
bin=$(cargo test ${CARGO_PROFILE:-} --test model --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*/deps/model-[^"]*"' | cut -d'"' -f4 | tail -1)
[ -x "$bin" ] || { echo "run.sh: could not build the model test" >&2; exit 2; }
out=${OUT:-$(mktemp -d -t model-seeds.XXXX)}
mkdir -p "$out"
# A copy, so that a rebuild during the run does not change the test under it.
cp "$bin" "$out/model-test" && bin=$out/model-test
echo "seeds $first..$((first + n - 1)), $ops operations each, $jobs at a time; output in $out"

run_one() {
  local seed=$1
  if MODEL_SEED=$seed MODEL_SEEDS=1 MODEL_OPS=$ops "$bin" --nocapture >"$out/seed-$seed.txt" 2>&1; then
    grep -h 'passed:' "$out/seed-$seed.txt" || true
    rm -f "$out/seed-$seed.txt"
  else
    echo "FAILED seed $seed"
  fi
}
export -f run_one
export bin out ops
seq "$first" $((first + n - 1)) | xargs -P "$jobs" -I{} bash -c 'run_one {}' | tee "$out/summary.txt"
failed=$(grep -c '^FAILED' "$out/summary.txt" || true)
echo "$failed of $n seeds failed"
grep '^FAILED' "$out/summary.txt" | sed 's/FAILED seed /  MODEL_SEED=/' || true
[ "$failed" -eq 0 ]
