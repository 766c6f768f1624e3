#!/usr/bin/env bash
# The two chunk-id functions in the pipeline (issue 20 §4): backups of one
# random file with `init --id-hash blake2b` and `--id-hash hmac-sha256`, side
# by side, interleaved run by run (see docs/performance.md "Chunk-id function").
#
# Usage: bench/id-hash.sh [--mib N] [--repeat N] [--out DIR]
#   --mib N      size of the random file (default 1024; cached as
#                $BENCH_CACHE/random-<N>M.img, made once from /dev/urandom)
#   --repeat N   runs per function (default 5); each run: fresh repository
#                (--kdf min --key-cache 0), full backup, backup of the same
#                file again (every chunk known: the id hash is the floor),
#                restore to a file (ids re-checked), compared with cmp
#   --out DIR    default $BENCH_CACHE/id-hash-<time>
# Reports, per function and step, the median and the best of N runs (wall s,
# CPU s, foreign load), and the blake2b / hmac ratio of the medians.
# Random data does not compress: zstd gives up on every chunk, so the CPU is
# read + id + a failed zstd attempt + AEAD. Run it under `nice -n 10` on a
# shared machine; BENCH_QUIET_WAIT=SEC waits for a quiet machine per step.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

mib=1024 repeat=5 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --mib) mib=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) bench_die "unknown argument $1 (see --help)" ;;
  esac
done
bench_require_root
cache=${BENCH_CACHE:-/var/tmp/sparetime-bench}
sparetime=$(bench_find_sparetime)
src=$cache/random-${mib}M.img
if [ ! -f "$src.complete" ]; then
  mkdir -p "$cache"
  echo "making $src ($mib MiB from /dev/urandom, once)" >&2
  head -c "$((mib << 20))" /dev/urandom > "$src"
  touch "$src.complete"
fi
out=${out:-$cache/id-hash-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"; out=$(cd "$out" && pwd)
STEPS=$out/steps; mkdir -p "$STEPS"
export SPARETIME_PASSPHRASE=bench-passphrase
fns="blake2b hmac-sha256"

{ bench_env
  echo "sparetime: $sparetime (git $(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown))"
  echo "input: $mib MiB from /dev/urandom; sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
} > "$out/env.txt"
cat "$out/env.txt"

for rep in $(seq 1 "$repeat"); do
  for fn in $fns; do
    repo=$out/repo-$fn
    rm -rf "$repo" "$out/restored.img"
    st=("$sparetime" --repo "$repo" --key-cache 0)
    "${st[@]}" -q init --kdf min --id-hash "$fn"
    bench_step "$fn-full.r$rep" "${st[@]}" --json backup "$src" --label full
    bench_step "$fn-again.r$rep" "${st[@]}" --json backup "$src" --label again
    bench_step "$fn-restore.r$rep" "${st[@]}" --json restore latest --to "$out/restored.img"
    cmp "$src" "$out/restored.img" || bench_die "$fn restored a file that differs from $src"
    echo "  $fn run $rep: full $(bench_res "$fn-full.r$rep" wall)s, again $(bench_res "$fn-again.r$rep" wall)s, restore $(bench_res "$fn-restore.r$rep" wall)s" >&2
  done
done
rm -rf "$out"/repo-* "$out/restored.img"

for fn in $fns; do
  for s in full again restore; do bench_best "$fn-$s" "$repeat"; bench_median "$fn-$s" "$repeat"; done
done
{
  echo
  echo "### Chunk-id function: $mib MiB random file, median (best) of $repeat runs"
  echo
  echo "| step | blake2b wall s | hmac-sha256 wall s | blake2b CPU s | hmac-sha256 CPU s | wall ratio hmac/blake2b | CPU ratio | foreign load (b / h) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for s in full again restore; do
    b=blake2b-$s.median h=hmac-sha256-$s.median
    printf '| %s | %s (%s) | %s (%s) | %s | %s | %s | %s | %s / %s |\n' "$s" \
      "$(bench_res "$b" wall)" "$(bench_res "blake2b-$s" wall)" \
      "$(bench_res "$h" wall)" "$(bench_res "hmac-sha256-$s" wall)" \
      "$(bench_res "$b" cpu)" "$(bench_res "$h" cpu)" \
      "$(bench_ratio "$(bench_res "$h" wall)" "$(bench_res "$b" wall)")" \
      "$(bench_ratio "$(bench_res "$h" cpu)" "$(bench_res "$b" cpu)")" \
      "$(bench_res "$b" foreign)" "$(bench_res "$h" foreign)"
  done
} > "$out/results.md"
cat "$out/results.md"
echo
echo "results: $out/results.md, logs: $STEPS"
