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
# Each size runs in a fresh store. The CPU seconds (user + sys) of the two
# commands are given too: on a loaded machine wall times mostly measure the
# wait for a core. Results: a markdown table on stdout and in OUT/results.md.
#
# Usage: bench/migration.sh [--sizes "10 100 1024"] [--out DIR]
# Env: SPARETIME_BIN (default build/agent/sparetime). Needs root (ptrace,
# clone3 set_tid) and perl. Bounded: every wait has a timeout; the processes
# it starts are killed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

sizes="10 100 1024" out=""
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) bench_die "unknown option $1 (see the header of $0)" ;;
  esac
done
[ "$(id -u)" = 0 ] || bench_die "run as root (ptrace, clone3 set_tid)"
[ -x /usr/bin/time ] || bench_die "/usr/bin/time missing: apt-get install -y time"
command -v perl > /dev/null || bench_die "perl missing"
bin=$(bench_find_sparetime)
out=${out:-${BENCH_CACHE:-/var/tmp/sparetime-bench}/migration-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

pids=() holder=""
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done; }
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Starts perl holding the first SIZE MiB of DATA, stdio on files and no other
# fd (a checkpoint refuses inherited pipes); sets $holder to its PID (a child
# of this shell, which reaps it) once it is ready.
start_holder() {
  local data=$1 log=$2
  (
    for f in /proc/$BASHPID/fd/*; do
      n=${f##*/}
      [ "$n" -gt 2 ] && eval "exec $n>&-"
    done
    exec perl -e '$| = 1; open(my $f, "<", $ARGV[0]) or die; read($f, my $s, -s $f); close $f;
                  print "ready\n"; sleep 1 while 1;' "$data" < /dev/null > "$log" 2>&1
  ) &
  local pid=$! i
  pids+=("$pid")
  for i in $(seq 600); do
    grep -q ready "$log" 2> /dev/null && { holder=$pid; return; }
    sleep 0.1
  done
  bench_die "holder $pid not ready after 60 s: $(cat "$log")"
}

cpu() { awk '{printf "%.2f", $1 + $2}' "$1"; }
json() { perl -MJSON::PP -e 'my $j = decode_json(join "", <STDIN>); print $j->{$ARGV[0]}' "$1"; }

{
  echo "| resident | pages | checkpoint: frozen (cpu) | stored | restore (cpu) | downtime | similar process adds |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$out/results.md"
for size in $sizes; do
  dir=$out/$size
  rm -rf "$dir"
  mkdir -p "$dir"
  head -c "${size}M" /dev/urandom > "$dir/data"
  start_holder "$dir/data" "$dir/first.log"
  first=$holder
  /usr/bin/time -f '%U %S' -o "$dir/checkpoint.time" \
    "$bin" checkpoint "$first" --to "$dir/image" --store "$dir/store" --json > "$dir/checkpoint.json"
  kill -KILL "$first"
  wait "$first" 2> /dev/null || true
  t0=$(now_ms)
  /usr/bin/time -f '%U %S' -o "$dir/restore.time" \
    "$bin" restore-process "$dir/image" --store "$dir/store" --json > "$dir/restore.json"
  restore_ms=$(( $(now_ms) - t0 ))
  restored=$(json pid < "$dir/restore.json")
  pids+=("$restored")
  [ "$(awk '{print $3}' "/proc/$restored/stat")" != Z ] || bench_die "restored process $restored is not running"
  kill -KILL "$restored"
  start_holder "$dir/data" "$dir/second.log"
  second=$holder
  "$bin" checkpoint "$second" --to "$dir/image2" --store "$dir/store" --leave-running --json > "$dir/similar.json"
  kill -KILL "$second"
  wait "$second" 2> /dev/null || true
  frozen_ms=$(json frozen_ms < "$dir/checkpoint.json")
  printf '| %s MiB | %s | %.0f ms (%s s) | %s MiB | %s ms (%s s) | %.0f ms | %s KiB |\n' "$size" \
    "$(json pages < "$dir/checkpoint.json")" "$frozen_ms" "$(cpu "$dir/checkpoint.time")" \
    "$(awk -v b="$(json new_bytes < "$dir/checkpoint.json")" 'BEGIN {printf "%.1f", b / 1048576}')" \
    "$restore_ms" "$(cpu "$dir/restore.time")" "$(awk -v a="$frozen_ms" -v b="$restore_ms" 'BEGIN {print a + b}')" \
    "$(awk -v b="$(json new_bytes < "$dir/similar.json")" 'BEGIN {printf "%.1f", b / 1024}')" | tee -a "$out/results.md"
  rm -f "$dir/data"
done
echo "results in $out/results.md" >&2
