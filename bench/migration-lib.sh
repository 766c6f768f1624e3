# shellcheck shell=bash
# Helpers shared by bench/migration.sh and bench/migration-netns.sh (sourced,
# not run): the perl "holder" process that keeps a data file resident, and
# reading fields of the CLI's --json output. The caller sets an EXIT trap
# that runs migration_cleanup (kills every holder started here).

# shellcheck disable=SC2034  # holder is read by the scripts that source this
migration_pids=() holder=""
migration_cleanup() { for p in "${migration_pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# migration_args ARGS...: the options both scripts take (--sizes, --out,
# --threads) into $sizes, $out and $threads; then the checks both need (root,
# /usr/bin/time, perl; python3 for --threads above 1).
migration_args() {
  sizes="10 100 1024" out="" threads=1
  while [ $# -gt 0 ]; do
    case $1 in
      --sizes) sizes=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --threads) threads=$2; shift 2 ;;
      *) bench_die "unknown option $1 (see the header of $0)" ;;
    esac
  done
  [ "$(id -u)" = 0 ] || bench_die "run as root (ptrace, clone3 set_tid, network namespaces)"
  [ -x /usr/bin/time ] || bench_die "/usr/bin/time missing: apt-get install -y time"
  command -v perl > /dev/null || bench_die "perl missing"
  [ "$threads" = 1 ] || [ -x /usr/bin/python3 ] || bench_die "/usr/bin/python3 missing (--threads)"
}

# The label of a row: "100 MiB", or "100 MiB, 4 threads".
holder_label() { if [ "$threads" = 1 ]; then echo "$1 MiB"; else echo "$1 MiB, $threads threads"; fi; }

# start_holder DATA LOG [PREFIX...]: starts perl (run through PREFIX, e.g.
# `nsenter --net=...`, which must exec it) holding all of DATA, stdio on
# files and no other fd (a checkpoint refuses inherited pipes); sets $holder
# to its PID (a child of this shell, which reaps it) once it is ready. With
# $threads above 1 the holder is /usr/bin/python3 holding DATA, with
# $threads - 1 more threads that each touch a page of it every 10 ms.
start_holder() {
  local data=$1 log=$2
  shift 2
  (
    for f in "/proc/$BASHPID/fd/"*; do
      n=${f##*/}
      [ "$n" -gt 2 ] && eval "exec $n>&-"
    done
    if [ "$threads" != 1 ]; then
      exec "$@" /usr/bin/python3 -c 'import sys, threading, time
d = open(sys.argv[1], "rb").read()
def touch(i):
    while True:
        _ = d[(i * 4096) % len(d)]; time.sleep(0.01)
for i in range(int(sys.argv[2]) - 1): threading.Thread(target=touch, args=(i,), daemon=True).start()
print("ready", flush=True)
while True: time.sleep(1)' "$data" "$threads" < /dev/null > "$log" 2>&1
    fi
    # shellcheck disable=SC2016  # perl code
    exec "$@" perl -e '$| = 1; open(my $f, "<", $ARGV[0]) or die; read($f, my $s, -s $f); close $f;
                       print "ready\n"; sleep 1 while 1;' "$data" < /dev/null > "$log" 2>&1
  ) &
  local pid=$! _
  migration_pids+=("$pid")
  for _ in $(seq 600); do
    # shellcheck disable=SC2034  # read by the caller
    grep -q ready "$log" 2> /dev/null && { holder=$pid; return; }
    sleep 0.1
  done
  bench_die "holder $pid not ready after 60 s: $(cat "$log")"
}

# Kills holder PID and reaps it.
stop_holder() { kill -KILL "$1" 2> /dev/null || true; wait "$1" 2> /dev/null || true; }

# json FIELD < FILE: one top-level field of a JSON object.
json() { perl -MJSON::PP -e 'my $j = decode_json(join "", <STDIN>); print $j->{$ARGV[0]}' "$1"; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
kib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1024}'; }
