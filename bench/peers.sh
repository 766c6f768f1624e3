#!/usr/bin/env bash
# Backups on peers vs a local repository, and restore from 1, 2 and 3 peers
# (issue 4; results in docs/performance.md "Peers").
#
# Usage: bench/peers.sh [--size MIB] [--out DIR]
#   --size MIB   corpus size (default 2048; the corpus is built once, cached in
#                $BENCH_CACHE, default /var/tmp/sparetime-bench)
#   --out DIR    work directory (default $BENCH_CACHE/peers-<size>-<time>)
#   --peer-link MBIT  shape each peer's outgoing link to MBIT Mbit/s (tc tbf
#                in its namespace), as each peer's own network link limits
#                what it can send; all agents share this machine's CPU and
#                disk, so without it restore-N measures those, not the peers
#                (default 0: unshaped)
# Env: SPARETIME_BIN, SPARETIMED_BIN (default build/agent/sparetime{,d}),
#      BENCH_CACHE, MAKE_CORPUS, BENCH_QUIET_WAIT.
#
# Four agents, each in its own network namespace joined by veth pairs to a
# bridge (as tests/testutil/test_network.cc does), one shared file directory:
# alpha owns the backups, beta, gamma and delta are its peers. Steps:
#   local      sparetime --repo init + backup of disk-v1.img (the baseline)
#   peers-r2   alpha backs disk-v1.img up to its 2 peers (R=2, only beta and
#              gamma running)
#   restore-N  alpha restores that snapshot with N of the peers that hold it
#              running (the backup for these is R=3 onto beta, gamma, delta)
# Targets: peers-r2 <= 1.3 x local; restore-3 >= 2 x faster than restore-1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

size=2048 out="" link_mbit=0
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --peer-link) link_mbit=$2; shift 2 ;;
    *) bench_die "unknown option $1 (see the header of $0)" ;;
  esac
done
bench_require_root
sparetime=$(bench_find_sparetime)
sparetimed=${SPARETIMED_BIN:-$(dirname "$sparetime")/sparetimed}
[ -x "$sparetimed" ] || bench_die "no sparetimed at $sparetimed: set SPARETIMED_BIN"
corpus=$(bench_corpus "$size")
out=${out:-${BENCH_CACHE:-/var/tmp/sparetime-bench}/peers-$size-$(date +%s)}
STEPS=$out/steps
mkdir -p "$STEPS"
export SPARETIME_PASSPHRASE=bench-passphrase

hosts=(alpha beta gamma delta)
prefix=stb$$
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bench_netns_down "$prefix" "${#hosts[@]}"
}
trap cleanup EXIT

addr() { echo "10.232.77.$(($1 + 1))"; }
bench_netns_up "$prefix" 10.232.77 "${#hosts[@]}" "$link_mbit"

# The directory: four enrolled agents (keys published on first start).
directory() {  # REPLICAS
  {
    printf 'dn: ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\nou: sparetime\n\n'
    printf 'dn: ou=agents,ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\nou: agents\n\n'
    printf 'dn: ou=policies,ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\nou: policies\n\n'
    for h in "${hosts[@]}"; do
      printf 'dn: cn=%s,ou=agents,ou=sparetime,dc=example,dc=org\nobjectClass: sparetimeAgent\ncn: %s\nsparetimeSite: site-%s\n\n' "$h" "$h" "$h"
    done
    printf 'dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\nobjectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\nsparetimeReplicas: %s\n' "$1"
  } > "$out/directory.ldif"
}
config() {  # INDEX
  local h=${hosts[$1]}
  cat > "$out/$h.conf" <<CONF
[agent]
name = $h
listen = $(addr "$1"):7401
advertise_address = $(addr "$1")
state_dir = $out/state-$h
heartbeat = 2s
[storage]
capacity = $((size * 4))M
[directory]
uri = file://$out/directory.ldif
base = ou=sparetime,dc=example,dc=org
poll_interval = 200ms
CONF
}
start() {  # INDEX
  ip netns exec "$prefix-$1" "$sparetimed" --config "$out/${hosts[$1]}.conf" \
    > "$out/${hosts[$1]}.log" 2>&1 &
  pids[$1]=$!
}
stop() { kill "${pids[$1]}" 2>/dev/null || true; wait "${pids[$1]}" 2>/dev/null || true; }
cli() { ip netns exec "$prefix-0" "$sparetime" --config "$out/alpha.conf" "$@"; }
# Waits until alpha sees N live peers.
wait_peers() {
  local n=$1 i
  for i in $(seq 1 100); do
    [ "$(cli peers --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["peers"]))' 2>/dev/null)" = "$n" ] && return 0
    sleep 0.2
  done
  bench_die "alpha does not see $n peers: $(cli peers 2>&1 | tail -3)"
}

src=$corpus/disk-v1.img
echo "corpus: $src ($(bench_mib "$(stat -c %s "$src")") MiB)" >&2

# Local baseline.
"$sparetime" --repo "$out/local" init --kdf min -q
bench_step local "$sparetime" --repo "$out/local" -q backup "$src"

# Two peers, R=2 (delta is not started, so it is not a live peer).
directory 2
for i in 0 1 2 3; do config "$i"; done
start 0; start 1; start 2
sleep 1; wait_peers 2
cli init --kdf min -q
bench_step peers-r2 ip netns exec "$prefix-0" "$sparetime" --config "$out/alpha.conf" -q backup "$src"
stop 0; stop 1; stop 2
rm -rf "$out"/state-*

# Three peers, R=3; then restores with 1, 2, 3 of them running.
directory 3
for i in 0 1 2 3; do start "$i"; done
sleep 1; wait_peers 3
cli init --kdf min -q
cli -q backup "$src"
for n in 3 2 1; do
  bench_step "restore-$n" ip netns exec "$prefix-0" "$sparetime" --config "$out/alpha.conf" -q \
    restore latest --to "$out/restored.img"
  cmp -s "$out/restored.img" "$src" || bench_die "restore with $n peers differs from the source"
  rm -f "$out/restored.img"
  stop "$n"  # delta, then gamma: the next round has one peer less
done

{
  bench_env
  echo "peer links: $([ "$link_mbit" -gt 0 ] && echo "${link_mbit} Mbit/s each (tc tbf)" || echo unshaped)"
  echo
  echo "| step | wall s | cpu s | peak RSS MiB | ratio |"
  echo "| --- | --- | --- | --- | --- |"
  local_wall=$(bench_res local wall)
  r1=$(bench_res restore-1 wall)
  for s in local peers-r2 restore-1 restore-2 restore-3; do
    case $s in
      peers-r2) ratio="$(bench_ratio "$(bench_res "$s" wall)" "$local_wall") x local (target <= 1.3)" ;;
      restore-*) ratio="$(bench_ratio "$r1" "$(bench_res "$s" wall)") x faster than 1 peer" ;;
      *) ratio="" ;;
    esac
    echo "| $s | $(bench_res "$s" wall) | $(bench_res "$s" cpu) | $(awk -v k="$(bench_res "$s" rss)" 'BEGIN {printf "%.1f", k / 1024}') | $ratio |"
  done
} | tee "$out/results.md"
