#!/usr/bin/env bash
# Chunk-size sweep for sparetime: the data behind kDefaultChunkSize
# (docs/performance.md).
#
# Usage: bench/chunk-sizes.sh [--size MIB] [--out DIR] [--sizes "65536 131072 ..."]
#                             [--repeat N]
#   --size MIB   corpus size (default 2048), built once and cached as in compare.sh
#   --out DIR    repos, logs and results.md (default $BENCH_CACHE/chunks-<size>-<time>)
#   --sizes      chunk sizes in bytes (default 64 KiB .. 4 MiB, powers of two)
#   --repeat N   back up v1 and v2 N times per size (fresh repo each time) and
#                keep each step's fastest run (default 1)
# Env: SPARETIME_BIN (default build/agent/sparetime), BENCH_CACHE, MAKE_CORPUS,
#      BENCH_QUIET_WAIT=SEC (before each step wait up to SEC for an idle machine).
#
# For each chunk size: init a repo (--kdf min: the KDF is the same fixed cost
# at every chunk size and would only add noise), back up disk-v1.img, then
# disk-v2.img, each from a cold page cache, and record times, bytes stored
# after v1, bytes v2 added (what dedup could not save), the number of chunks
# in the pack index and its size, and the manifests' share of the store.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

size=2048 out="" sizes="65536 131072 262144 524288 1048576 2097152 4194304" repeat=1
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) bench_die "unknown argument $1 (see --help)" ;;
  esac
done
bench_require_root
command -v sqlite3 > /dev/null || bench_die "sqlite3 missing: apt-get install -y sqlite3"
cache=${BENCH_CACHE:-/var/tmp/sparetime-bench}
sparetime=$(bench_find_sparetime)
corpus=$(bench_corpus "$size")
out=${out:-$cache/chunks-$size-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"; out=$(cd "$out" && pwd)
STEPS=$out/steps; mkdir -p "$STEPS"
export SPARETIME_PASSPHRASE=bench-passphrase

# jstat FILE KEY: a number from sparetime's backup --json output (stats.KEY or KEY).
jstat() {
  python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(s["stats"][sys.argv[2]] if sys.argv[2] in s["stats"] else s[sys.argv[2]])' "$1" "$2"
}
kib() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1024}'; }

{ bench_env
  echo "corpus: $size MiB ext4 images (bench/compare.sh describes them)"
  echo "sparetime: $sparetime (git $(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown))"
} > "$out/env.txt"
cat "$out/env.txt"

rows=()
for cs in $sizes; do
  repo=$out/repo-$cs
  for rep in $(seq 1 "$repeat"); do
    rm -rf "$repo"
    echo "== chunk size $cs (run $rep of $repeat)" >&2
    "$sparetime" -q --repo "$repo" init --chunk-size "$cs" --kdf min
    # Both versions under one path, as in compare.sh, so v2 is the same device.
    mkdir -p "$corpus/current"
    ln -f "$corpus/disk-v1.img" "$corpus/current/disk.img"
    bench_step "$cs-v1.r$rep" "$sparetime" --json --repo "$repo" backup "$corpus/current/disk.img"
    after_v1=$(du -sb "$repo" | cut -f1)
    ln -f "$corpus/disk-v2.img" "$corpus/current/disk.img"
    bench_step "$cs-v2.r$rep" "$sparetime" --json --repo "$repo" backup "$corpus/current/disk.img"
    after_v2=$(du -sb "$repo" | cut -f1)
  done
  bench_best "$cs-v1" "$repeat"; bench_best "$cs-v2" "$repeat"
  cp "$STEPS/$cs-v1.r$repeat.out" "$STEPS/$cs-v1.out"; cp "$STEPS/$cs-v2.r$repeat.out" "$STEPS/$cs-v2.out"

  idx=$repo/store/index.db
  read -r n_blobs blob_bytes < <(sqlite3 -separator ' ' "file:$idx?mode=ro" \
    'SELECT count(*), coalesce(sum(length), 0) FROM chunks') || bench_die "cannot read $idx"
  data_chunks=$(( $(jstat "$STEPS/$cs-v1.out" new_chunks) + $(jstat "$STEPS/$cs-v2.out" new_chunks) ))
  data_bytes=$(( $(jstat "$STEPS/$cs-v1.out" stored_bytes) + $(jstat "$STEPS/$cs-v2.out" stored_bytes) ))
  index_bytes=$(du -sb "$idx"* | awk '{s += $1} END {print s}')
  rows+=("| $(kib "$cs") KiB | $(bench_res "$cs-v1" wall) | $(bench_res "$cs-v1" cpu) \
| $(bench_res "$cs-v2" wall) | $(bench_res "$cs-v2" cpu) | $(bench_mib "$after_v1") \
| $(bench_mib $(( after_v2 - after_v1 ))) | $(bench_mib "$(jstat "$STEPS/$cs-v2.out" new_bytes)") \
| $(jstat "$STEPS/$cs-v1.out" holes) | $n_blobs | $(kib "$index_bytes") \
| $(( n_blobs - data_chunks )) / $(kib $(( blob_bytes - data_bytes ))) \
| $(bench_mib $(( $(bench_res "$cs-v1" rss) * 1024 ))) \
| $(awk -v a="$(bench_res "$cs-v1" foreign)" -v b="$(bench_res "$cs-v2" foreign)" 'BEGIN {print (a > b) ? a : b}') |")
  rm -rf "$repo"
done

{
  echo
  echo "### Chunk-size sweep ($size MiB corpus, v1 then v2 into one repo, best of $repeat runs)"
  echo
  echo "Foreign load: the most CPU (cores) other processes used during either backup;"
  echo "above ~0.2 the times are inflated. Sizes and counts do not depend on it."
  echo
  echo "| chunk | full wall s | full CPU s | incr wall s | incr CPU s | stored after v1 MiB | added by v2 MiB | v2 new plaintext MiB | v1 holes | chunks in index | index.db KiB | manifest blobs / KiB | peak RSS MiB | foreign load |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > "$out/results.md"
cat "$out/results.md"
echo
echo "results: $out/results.md, logs: $STEPS"
