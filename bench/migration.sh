#!/usr/bin/env bash
# Process migration benchmark (docs/performance.md, "Migration"): for a perl
# process holding SIZE MiB of incompressible data resident (default sizes 10,
# 100 and 1024), the local round trip of the CLI:
#   checkpoint  `sparetime checkpoint PID --to FILE --json`: frozen_ms is the
#               time the process was stopped for (freeze, dump, pages sealed
#               into the migration store, FILE written); new_bytes what the
#               store took;
#   restore     `sparetime restore-process FILE` until it returns (the
#               process runs): pages read back, opened, written into the stub;
#   downtime    frozen_ms + restore: how long the job did not run (a
#               migration to another agent adds the transfer of the sent
#               bytes, and runs the restore on the target);
#   similar     a second process holding the same data, checkpointed with
#               --leave-running into the same store: the bytes it adds.
# Each size runs in a fresh store. The CPU seconds (user + sys) and peak RSS
# of the two commands are given too: on a loaded machine wall times mostly
# measure the wait for a core. Results: a markdown table on stdout and in OUT/results.md.
#
# Usage: bench/migration.sh [--sizes "10 100 1024"] [--threads N] [--out DIR]
# (--threads N: the holder is python3 with N threads, see migration-lib.sh)
# Env: SPARETIME_BIN (default build/agent/sparetime). Needs root (ptrace,
# clone3 set_tid) and perl. Bounded: every wait has a timeout; the processes
# it starts are killed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
# shellcheck source-path=SCRIPTDIR source=migration-lib.sh
. "$here/migration-lib.sh"

migration_args "$@"
bin=$(bench_find_sparetime)
out=${out:-${BENCH_CACHE:-/var/tmp/sparetime-bench}/migration-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
trap migration_cleanup EXIT

cpu() { awk '{printf "%.2f", $1 + $2}' "$1"; }
rss() { awk '{printf "%.0f", $3 / 1024}' "$1"; }  # peak RSS in MiB

{
  echo "| resident | pages | checkpoint: frozen (cpu, peak RSS) | stored | restore (cpu, peak RSS) | downtime | similar process adds |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$out/results.md"
for size in $sizes; do
  dir=$out/$size
  rm -rf "$dir"
  mkdir -p "$dir"
  head -c "${size}M" /dev/urandom > "$dir/data"
  start_holder "$dir/data" "$dir/first.log"
  first=$holder
  /usr/bin/time -f '%U %S %M' -o "$dir/checkpoint.time" \
    "$bin" checkpoint "$first" --to "$dir/image" --store "$dir/store" --json > "$dir/checkpoint.json"
  stop_holder "$first"
  t0=$(now_ms)
  /usr/bin/time -f '%U %S %M' -o "$dir/restore.time" \
    "$bin" restore-process "$dir/image" --store "$dir/store" --json > "$dir/restore.json"
  restore_ms=$(( $(now_ms) - t0 ))
  restored=$(json pid < "$dir/restore.json")
  migration_pids+=("$restored")
  [ "$(awk '{print $3}' "/proc/$restored/stat")" != Z ] || bench_die "restored process $restored is not running"
  kill -KILL "$restored"
  start_holder "$dir/data" "$dir/second.log"
  second=$holder
  "$bin" checkpoint "$second" --to "$dir/image2" --store "$dir/store" --leave-running --json > "$dir/similar.json"
  stop_holder "$second"
  frozen_ms=$(json frozen_ms < "$dir/checkpoint.json")
  printf '| %s | %s | %.0f ms (%s s, %s MiB) | %s MiB | %s ms (%s s, %s MiB) | %.0f ms | %s KiB |\n' "$(holder_label "$size")" \
    "$(json pages < "$dir/checkpoint.json")" "$frozen_ms" "$(cpu "$dir/checkpoint.time")" "$(rss "$dir/checkpoint.time")" \
    "$(mib "$(json new_bytes < "$dir/checkpoint.json")")" \
    "$restore_ms" "$(cpu "$dir/restore.time")" "$(rss "$dir/restore.time")" "$(awk -v a="$frozen_ms" -v b="$restore_ms" 'BEGIN {print a + b}')" \
    "$(kib "$(json new_bytes < "$dir/similar.json")")" | tee -a "$out/results.md"
  rm -f "$dir/data"
done
echo "results in $out/results.md" >&2
