# shellcheck shell=bash
# Shared helpers for the bench/ scripts (sourced, not run).
#
# Every timed step runs one tool under /usr/bin/time (wall, user, sys, peak
# RSS of that process), then `sync`, whose wall time is added to the step: the
# tools differ in how much they fsync themselves (sparetime fsyncs packs and
# restored targets; restic and borg leave more to the page cache), so charging
# each with the writeback it leaves behind keeps the comparison fair. Page
# caches are dropped before every step so each tool reads its input from disk.

bench_die() { echo "bench: $*" >&2; exit 1; }

bench_require_root() {
  [ "$(id -u)" = 0 ] || bench_die "run as root (drops page caches, mounts the corpus)"
  [ -x /usr/bin/time ] || bench_die "/usr/bin/time missing: apt-get install -y time"
}

# Finds the sparetime binary: $SPARETIME_BIN, else build/agent/sparetime.
bench_find_sparetime() {
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local bin=${SPARETIME_BIN:-$root/build/agent/sparetime}
  [ -x "$bin" ] || bench_die "no sparetime binary at $bin: run scripts/build or set SPARETIME_BIN"
  echo "$bin"
}

# Builds (or reuses) the corpus for SIZE_MIB under $BENCH_CACHE; prints its dir.
# A finished build leaves a .complete stamp, so a half-built corpus is redone.
bench_corpus() {
  local size=$1 cache=${BENCH_CACHE:-/var/tmp/sparetime-bench}
  local dir=$cache/corpus-$size
  local maker=${MAKE_CORPUS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/bench/make-corpus.sh}
  if [ ! -f "$dir/.complete" ]; then
    [ -f "$maker" ] || bench_die "corpus script $maker missing: set MAKE_CORPUS"
    echo "building the ${size} MiB corpus in $dir (a few minutes, once)" >&2
    rm -rf "$dir"
    bash "$maker" "$dir" "$size" >&2
    touch "$dir/.complete"
  fi
  echo "$dir"
}

bench_drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# Busy CPU seconds of the whole machine so far (all cores, from /proc/stat).
bench_busy() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz}' /proc/stat
}

# Waits until the machine is quiet (other processes use < 0.15 cores) for at
# most $BENCH_QUIET_WAIT seconds (default 0: don't wait). On a shared machine
# wall times are only comparable between steps that ran without foreign load.
bench_wait_quiet() {
  local max=${BENCH_QUIET_WAIT:-0} waited=0 b0 b1
  while [ "$waited" -lt "$max" ]; do
    b0=$(bench_busy); sleep 2; b1=$(bench_busy)
    awk -v a="$b0" -v b="$b1" 'BEGIN {exit !((b - a) / 2 < 0.15)}' && return 0
    sleep 8; waited=$((waited + 10))
  done
  [ "$max" -gt 0 ] && echo "bench: machine still busy after ${max}s; measuring anyway" >&2
  return 0
}

# bench_step NAME CMD...: drops caches, runs CMD under /usr/bin/time and then
# sync; writes $STEPS/NAME.{out,err} and $STEPS/NAME.res, one line
# "wall cpu rss_kib foreign", where foreign is the CPU (in cores) that other
# processes used meanwhile: above ~0.2 the step's wall time is suspect.
# Fails the bench, showing the tool's stderr, when CMD fails.
bench_step() {
  local name=$1; shift
  bench_wait_quiet
  bench_drop_caches
  local t0 t1 b0 b1 rc=0
  b0=$(bench_busy)
  /usr/bin/time -f '%e %U %S %M' -o "$STEPS/$name.time" "$@" \
    > "$STEPS/$name.out" 2> "$STEPS/$name.err" || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 20 "$STEPS/$name.err" >&2
    bench_die "step $name failed (exit $rc): $*"
  fi
  t0=$(date +%s.%N); sync; t1=$(date +%s.%N)
  b1=$(bench_busy)
  # /usr/bin/time may prepend "Command exited..." lines; the numbers are last.
  tail -n 1 "$STEPS/$name.time" |
    awk -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" '{
      wall = $1 + t1 - t0; cpu = $2 + $3; foreign = (b1 - b0 - cpu) / wall
      printf "%.2f %.2f %d %.2f\n", wall, cpu, $4, foreign < 0 ? 0 : foreign}' \
    > "$STEPS/$name.res"
}

# bench_best NAME N: of NAME.r1 .. NAME.rN keeps the run with the least wall
# time as NAME.res (repeats filter out moments when the machine was busy).
bench_best() {
  local i
  for i in $(seq 1 "$2"); do cat "$STEPS/$1.r$i.res"; done | sort -n -k1,1 | head -n 1 > "$STEPS/$1.res"
}

# bench_median NAME N: of NAME.r1 .. NAME.rN keeps the run with the median
# wall time (the faster of the middle two when N is even) as NAME.median.res.
bench_median() {
  local i
  for i in $(seq 1 "$2"); do cat "$STEPS/$1.r$i.res"; done | sort -n -k1,1 |
    sed -n "$(( ($2 + 1) / 2 ))p" > "$STEPS/$1.median.res"
}

# bench_res NAME FIELD: FIELD is wall, cpu, rss (KiB) or foreign of a finished step.
bench_res() {
  local i
  case $2 in wall) i=1 ;; cpu) i=2 ;; rss) i=3 ;; foreign) i=4 ;; *) bench_die "bad field $2" ;; esac
  awk -v i="$i" '{print $i}' "$STEPS/$1.res"
}

bench_mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

# Machine and tool versions, one line each, for the results header.
bench_env() {
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "kernel: $(uname -r)"
  echo "filesystem: $(df -T "${BENCH_CACHE:-/var/tmp/sparetime-bench}" | awk 'NR == 2 {print $2}')"
}

# N hosts in network namespaces PREFIX-0 .. PREFIX-(N-1), joined by veth pairs
# to a bridge in PREFIX-br (as tests/testutil/test_network.cc does); host i is
# SUBNET.(i+1)/24 on its eth0. With LINK_MBIT > 0 every host but the first
# sends through a tc tbf at that rate: a peer's own link limits what it sends.
bench_netns_up() {  # PREFIX SUBNET N LINK_MBIT
  local prefix=$1 subnet=$2 n=$3 mbit=$4 i ns
  ip netns add "$prefix-br"
  ip -n "$prefix-br" link add br0 type bridge
  ip -n "$prefix-br" link set br0 up
  for ((i = 0; i < n; i++)); do
    ns=$prefix-$i
    ip netns add "$ns"
    ip -n "$ns" link add eth0 type veth peer name "p$i" netns "$prefix-br"
    ip -n "$prefix-br" link set "p$i" master br0
    ip -n "$prefix-br" link set "p$i" up
    ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    if [ "$i" -gt 0 ] && [ "$mbit" -gt 0 ]; then
      ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "${mbit}mbit" burst 512kb latency 100ms
    fi
  done
}
bench_netns_down() {  # PREFIX N
  local i
  for ((i = 0; i < $2; i++)); do ip netns del "$1-$i" 2>/dev/null || true; done
  ip netns del "$1-br" 2>/dev/null || true
}
