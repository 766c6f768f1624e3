#!/usr/bin/env bash
# Mount from peers (issue 24): sequential reads through `sparetime mount`
# of a snapshot held by 3 peers, with 3, 2 and 1 of them running, each
# peer's link shaped (results in docs/performance.md "Mount from peers").
#
# Usage: bench/mount_peers.sh [--mib N] [--read-mib N] [--peer-link MBIT] [--out DIR]
#   --mib N         the image: the first N MiB of the corpus's disk-v1.img (default 512)
#   --read-mib N    MiB read through the mount, from the start of disk.img (default 200)
#   --peer-link MBIT  each peer's outgoing link (tc tbf in its namespace; default 100)
#   --out DIR       work directory (default $BENCH_CACHE/mount-peers-<time>)
# Env: SPARETIME_BIN, SPARETIMED_BIN, BENCH_CACHE, MAKE_CORPUS (see lib.sh).
#
# The network is bench/peers.sh's: four agents in their own namespaces on one
# bridge; alpha owns the backups, beta, gamma and delta hold them (R=3). The
# backup is not timed. Then, for N = 3, 2, 1 running peers: a fresh `sparetime
# mount` in alpha's namespace (nsenter --net: the FUSE mount stays visible
# here), a cold page cache, `dd` of --read-mib MiB of DIR/disk.img, compared
# byte for byte with the source. The mount's read-ahead fetches up to 32
# chunks in parallel, and the peer set starts each chunk's read at a
# different replica, so N peers should give about N links' worth.
# Target (issue 24): 3 peers read faster than 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

mib=512 read_mib=200 link_mbit=100 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --mib) mib=$2; shift 2 ;;
    --read-mib) read_mib=$2; shift 2 ;;
    --peer-link) link_mbit=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) bench_die "unknown option $1 (see --help)" ;;
  esac
done
[ "$read_mib" -le "$mib" ] || bench_die "--read-mib must not exceed --mib"
bench_require_root
sparetime=$(bench_find_sparetime)
sparetimed=${SPARETIMED_BIN:-$(dirname "$sparetime")/sparetimed}
[ -x "$sparetimed" ] || bench_die "no sparetimed at $sparetimed: set SPARETIMED_BIN"
corpus=$(bench_corpus 2048)
out=${out:-${BENCH_CACHE:-/var/tmp/sparetime-bench}/mount-peers-$(date +%s)}
STEPS=$out/steps
mkdir -p "$STEPS" "$out/mnt"
export SPARETIME_PASSPHRASE=bench-passphrase

hosts=(alpha beta gamma delta)
prefix=stm$$
pids=()
mount_pid=""
cleanup() {
  [ -n "$mount_pid" ] && kill "$mount_pid" 2>/dev/null
  "$sparetime" umount "$out/mnt" > /dev/null 2>&1 || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bench_netns_down "$prefix" "${#hosts[@]}"
}
trap cleanup EXIT

addr() { echo "10.232.78.$(($1 + 1))"; }
bench_netns_up "$prefix" 10.232.78 "${#hosts[@]}" "$link_mbit"

{
  printf 'dn: ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\nou: sparetime\n\n'
  printf 'dn: ou=agents,ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\nou: agents\n\n'
  printf 'dn: ou=policies,ou=sparetime,dc=example,dc=org\nobjectClass: organizationalUnit\nou: policies\n\n'
  for h in "${hosts[@]}"; do
    printf 'dn: cn=%s,ou=agents,ou=sparetime,dc=example,dc=org\nobjectClass: sparetimeAgent\ncn: %s\nsparetimeSite: site-%s\n\n' "$h" "$h" "$h"
  done
  printf 'dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\nobjectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\nsparetimeReplicas: 3\n'
} > "$out/directory.ldif"
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  cat > "$out/$h.conf" <<CONF
[agent]
name = $h
listen = $(addr "$i"):7401
advertise_address = $(addr "$i")
state_dir = $out/state-$h
heartbeat = 2s
[storage]
capacity = $((mib * 4))M
[directory]
uri = file://$out/directory.ldif
base = ou=sparetime,dc=example,dc=org
poll_interval = 200ms
CONF
  ip netns exec "$prefix-$i" "$sparetimed" --config "$out/$h.conf" > "$out/$h.log" 2>&1 &
  pids[$i]=$!
done
cli() { ip netns exec "$prefix-0" "$sparetime" --config "$out/alpha.conf" "$@"; }
for _ in $(seq 1 100); do
  [ "$(cli peers --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["peers"]))' 2>/dev/null)" = 3 ] && break
  sleep 0.2
done

src=$out/disk.img
head -c $((mib << 20)) "$corpus/disk-v1.img" > "$src"
data_mib=$(python3 - "$src" "$read_mib" <<'PY'
import sys
n = 0
with open(sys.argv[1], 'rb') as f:
    for _ in range(int(sys.argv[2])):
        b = f.read(1 << 20)
        n += b.count(0) != len(b)
print(n)
PY
)
cli init --kdf min -q
cli -q backup "$src"

now() { date +%s.%N; }
for n in 3 2 1; do
  bench_drop_caches
  nsenter --net="/run/netns/$prefix-0" "$sparetime" --config "$out/alpha.conf" \
    mount latest "$out/mnt" --filesystems false > "$STEPS/mount-$n.log" 2>&1 &
  mount_pid=$!
  for _ in $(seq 1 600); do [ -e "$out/mnt/disk.img" ] && break; sleep 0.1; done
  [ -e "$out/mnt/disk.img" ] || bench_die "the mount did not come up: $(cat "$STEPS/mount-$n.log")"
  load=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(now)
  dd if="$out/mnt/disk.img" of="$out/read.bin" bs=1M count="$read_mib" status=none
  t1=$(now)
  cmp -s -n $((read_mib << 20)) "$out/read.bin" "$src" || bench_die "read with $n peers differs from the source"
  rm -f "$out/read.bin"
  "$sparetime" umount "$out/mnt" > /dev/null
  wait "$mount_pid" 2>/dev/null || true
  mount_pid=""
  awk -v a="$t0" -v b="$t1" -v m="$read_mib" -v l="$load" -v n="$n" \
    'BEGIN {printf "%d %.2f %.1f %s\n", n, b - a, m * 1.048576 / (b - a), l}' >> "$STEPS/reads"
  if [ "$n" -gt 1 ]; then kill "${pids[$n]}"; wait "${pids[$n]}" 2>/dev/null || true; fi
done

{
  bench_env
  echo "image: first $mib MiB of disk-v1.img; read: $read_mib MiB of disk.img ($data_mib MiB of it data, the rest all-zero chunks never fetched)"
  echo "peer links: ${link_mbit} Mbit/s each (tc tbf on each peer's egress); R = 3"
  echo
  echo "| running peers | wall s | MB/s of disk.img | x 1 peer | load avg at start |"
  echo "| --- | --- | --- | --- | --- |"
  one=$(awk '$1 == 1 {print $2}' "$STEPS/reads")
  while read -r n wall mbs load; do
    echo "| $n | $wall | $mbs | $(awk -v a="$one" -v b="$wall" 'BEGIN {printf "%.2f", a / b}') | $load |"
  done < "$STEPS/reads"
} | tee "$out/results.md"
