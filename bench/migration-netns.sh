#!/usr/bin/env bash
# Cross-agent process migration benchmark (docs/performance.md, "Migration"):
# `sparetime migrate PID --to alpha` from agent beta to agent alpha, two
# sparetimed in their own network namespaces joined by a veth pair, one file
# directory whose example policy (conf/ldap/example-dit.ldif) lets alpha
# accept migrations from beta. alpha also runs in a PID namespace of its own
# (as tests/integration/migration_netns_test.cc does), so a PID from beta is
# free there although both "hosts" share this kernel. For a perl process
# holding SIZE MiB of incompressible data resident (default 10, 100, 1024):
#   total    wall time of `sparetime migrate` (connect, policy check, freeze,
#            dump + send, restore on alpha, kill of the source);
#   frozen   --json frozen_ms: from the freeze until the source is killed
#            after alpha confirmed — the downtime, split into dump (pages read
#            and the new ones sent alongside), send (the rest and the index)
#            and restore (alpha: load, restore, its 100 ms liveness wait,
#            during which the process already runs there);
#   sent     --json sent_bytes: the sealed chunk bytes sent (new to alpha);
#   similar  a second process holding the same data migrated the same way:
#            its sent bytes and frozen time (alpha's migration cache of beta
#            holds the pages already).
#   cpu      CPU seconds (user + sys) of the source's `sparetime migrate` and
#            of alpha's sparetimed during it: on a loaded machine wall times
#            mostly measure the wait for a core.
# Each size uses fresh random data; the agents keep running across sizes.
# Results: a markdown table on stdout and in OUT/results.md.
#
# Usage: bench/migration-netns.sh [--sizes "10 100 1024"] [--threads N] [--out DIR]
# Env: SPARETIME_BIN, SPARETIMED_BIN (default build/agent/sparetime{,d}).
# Needs root (ip netns, ptrace, clone3 set_tid), perl, unshare, nsenter.
# Bounded: every wait has a timeout; agents, namespaces and the processes it
# starts are removed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
# shellcheck source-path=SCRIPTDIR source=migration-lib.sh
. "$here/migration-lib.sh"

migration_args "$@"
for tool in unshare nsenter ip pgrep; do
  command -v "$tool" > /dev/null || bench_die "$tool missing"
done
sparetime=$(bench_find_sparetime)
sparetimed=${SPARETIMED_BIN:-$(dirname "$sparetime")/sparetimed}
[ -x "$sparetimed" ] || bench_die "no sparetimed at $sparetimed: set SPARETIMED_BIN"
out=${out:-${BENCH_CACHE:-/var/tmp/sparetime-bench}/migration-netns-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

prefix=stm$$
hosts=(alpha beta)
agents=()
cleanup() {
  migration_cleanup
  for p in "${agents[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  for i in "${!hosts[@]}"; do ip netns del "$prefix-$i" 2> /dev/null || true; done
}
trap cleanup EXIT

addr() { echo "10.232.78.$(($1 + 1))"; }
for i in "${!hosts[@]}"; do ip netns add "$prefix-$i"; done
ip -n "$prefix-0" link add eth0 type veth peer name eth0 netns "$prefix-1"
for i in "${!hosts[@]}"; do
  ip -n "$prefix-$i" addr add "$(addr "$i")/24" dev eth0
  ip -n "$prefix-$i" link set eth0 up
  ip -n "$prefix-$i" link set lo up
done

# The example directory without its example keys: each agent publishes its
# own on first start.
grep -v '^sparetimePublicKey:' "$root/conf/ldap/example-dit.ldif" > "$out/directory.ldif"
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  cat > "$out/$h.conf" <<CONF
[agent]
name = $h
listen = $(addr "$i"):7401
advertise_address = $(addr "$i")
state_dir = $out/state-$h
heartbeat = 1s
[storage]
capacity = 1G
[directory]
uri = file://$out/directory.ldif
base = ou=sparetime,dc=example,dc=org
poll_interval = 200ms
CONF
done
# alpha: network, mount and PID namespaces of its own (killing unshare kills
# the whole PID namespace); beta: its network namespace only.
ip netns exec "$prefix-0" unshare --pid --fork --kill-child=SIGKILL --mount-proc --propagation slave \
  "$sparetimed" --config "$out/alpha.conf" > "$out/alpha.log" 2>&1 &
agents+=($!)
alpha_unshare=$!
nsenter --net="/run/netns/$prefix-1" "$sparetimed" --config "$out/beta.conf" > "$out/beta.log" 2>&1 &
agents+=($!)

in_net() { local i=$1; shift; nsenter --net="/run/netns/$prefix-$i" "$@"; }
cli() { local i=$1; shift; in_net "$i" "$sparetime" --config "$out/${hosts[$i]}.conf" "$@"; }
reachable() {
  cli "$1" peers --probe --json 2> /dev/null |
    perl -MJSON::PP -e 'my $j = decode_json(join "", <STDIN>); my $p = $j->{peers};
                        exit !(@$p == 1 && $p->[0]{probe}{reachable})' 2> /dev/null
}
for i in $(seq 150); do
  reachable 1 && reachable 0 && break
  [ "$i" = 150 ] && bench_die "the agents do not reach each other after 30 s; logs in $out"
  sleep 0.2
done

alpha_daemon=$(pgrep -P "$alpha_unshare" -x sparetimed) || bench_die "alpha's sparetimed is not running"
# The process alpha restored from beta (a perl or python3 child of alpha's sparetimed).
holder_comm=perl
[ "$threads" = 1 ] || holder_comm=python3
restored_on_alpha() { pgrep -P "$alpha_daemon" -x "$holder_comm"; }
# CPU seconds alpha's sparetimed used so far (utime + stime, all threads).
alpha_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$alpha_daemon/stat"; }

# migrate NAME PID: moves PID to alpha; NAME.json, NAME.ms, NAME.time (source
# CPU) and NAME.cpu (alpha's CPU) in $dir; kills the restored process after.
migrate() {
  local name=$1 pid=$2 t0 c0 moved i
  t0=$(now_ms) c0=$(alpha_cpu)
  in_net 1 /usr/bin/time -f '%U %S' -o "$dir/$name.time" \
    "$sparetime" --config "$out/beta.conf" migrate "$pid" --to alpha --json > "$dir/$name.json" 2> "$dir/$name.err" ||
    bench_die "migrate of $pid failed: $(cat "$dir/$name.err")"
  echo $(( $(now_ms) - t0 )) > "$dir/$name.ms"
  awk -v a="$c0" -v b="$(alpha_cpu)" 'BEGIN {printf "%.2f", b - a}' > "$dir/$name.cpu"
  wait "$pid" 2> /dev/null || true  # the source, killed by migrate
  for i in $(seq 50); do
    moved=$(restored_on_alpha) && break
    sleep 0.1
  done
  [ -n "${moved:-}" ] || bench_die "no restored process on alpha after $name; logs in $out"
  kill -KILL "$moved"
}

{
  echo "| resident | pages | total | frozen (dump + send + restore) | sent | cpu: source, alpha | similar process: sent, frozen |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$out/results.md"
for size in $sizes; do
  dir=$out/$size
  rm -rf "$dir"
  mkdir -p "$dir"
  head -c "${size}M" /dev/urandom > "$dir/data"
  # As nobody: alpha runs migrated root processes only with
  # sparetimeMigrationPrivileged, which the example policy does not set.
  chmod 755 "$out" "$dir" && chmod 644 "$dir/data"
  as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  start_holder "$dir/data" "$dir/first.log" nsenter --net="/run/netns/$prefix-1" "${as_nobody[@]}"
  migrate first "$holder"
  start_holder "$dir/data" "$dir/second.log" nsenter --net="/run/netns/$prefix-1" "${as_nobody[@]}"
  migrate similar "$holder"
  f=$dir/first.json s=$dir/similar.json
  printf '| %s | %s | %s ms | %.0f ms (%.0f + %.0f + %.0f) | %s MiB | %s s, %s s | %s KiB, %.0f ms |\n' "$(holder_label "$size")" \
    "$(json pages < "$f")" "$(cat "$dir/first.ms")" "$(json frozen_ms < "$f")" "$(json dump_ms < "$f")" \
    "$(json send_ms < "$f")" "$(json restore_ms < "$f")" "$(mib "$(json sent_bytes < "$f")")" \
    "$(awk '{printf "%.2f", $1 + $2}' "$dir/first.time")" "$(cat "$dir/first.cpu")" \
    "$(kib "$(json sent_bytes < "$s")")" "$(json frozen_ms < "$s")" | tee -a "$out/results.md"
  rm -f "$dir/data"
done
echo "results in $out/results.md" >&2
