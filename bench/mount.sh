#!/usr/bin/env bash
# Mount benchmark (issue 24): `sparetime mount` vs `restic mount` vs `borg
# mount` of the same disk image, on the same machine, in the same run.
#
# Usage: bench/mount.sh [--size MIB] [--out DIR] [--repeat N]
#   --size MIB   corpus size (default 2048)
#   --out DIR    work directory (default $BENCH_CACHE/mount-<size>-<time>)
#   --repeat N   repeat each timed read N times; tables show the median (default 3)
# Env: SPARETIME_BIN, BENCH_CACHE, MAKE_CORPUS, BENCH_QUIET_WAIT (see lib.sh).
#
# The disk: a GPT image whose partition 1 (at 1 MiB) holds the corpus's
# disk-v1.img ext4 filesystem plus one 200 MB file of real bytes (/usr files
# concatenated), so `DIR/part1/data` exists as the issue's target names it.
# Each tool backs that disk image up once. Measured, each from a cold page
# cache and a freshly started mount process:
#   first-ls    sparetime: from starting `sparetime mount` to the first
#               successful `ls DIR/part1/data` (FUSE + partition table +
#               loop + ext4 mount); restic/borg: to the first `ls` of the
#               backed-up file inside their mount
#   seq-file    sparetime only: `dd` of the 200 MB file through ext4 + loop + FUSE
#   seq-range   every tool: `dd` of the same 200 MB byte range of the disk
#               image (where the 200 MB file lies), through each tool's FUSE
#   rand-4k     sparetime only: 1000 random 4 KiB reads inside the 200 MB
#               file (O_DIRECT, through ext4): p50 and p99 latency; a read
#               in a chunk an earlier read fetched is a cache hit
#   rss         the mount process's peak RSS (VmHWM) after the random reads
#               and a sequential read of the whole 200 MB file, with the
#               default 256 MiB cache and again with --cache-mib 64
#   restore     `sparetime restore` of the whole image to a file: the
#               full-restore throughput the mount is compared with
# Results: OUT/results.md; raw numbers in OUT/steps/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

size=2048 out="" repeat=3
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) bench_die "unknown argument $1 (see --help)" ;;
  esac
done
bench_require_root
for t in restic borg sgdisk python3; do
  command -v "$t" > /dev/null || bench_die "$t missing: apt-get install -y restic borgbackup gdisk"
done
cache=${BENCH_CACHE:-/var/tmp/sparetime-bench}
sparetime=$(bench_find_sparetime)
corpus=$(bench_corpus "$size")
out=${out:-$cache/mount-$size-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"; out=$(cd "$out" && pwd)
STEPS=$out/steps; mkdir -p "$STEPS"
mnt=$out/mnt; mkdir -p "$mnt"
export SPARETIME_PASSPHRASE=bench-pass RESTIC_PASSWORD=bench-pass BORG_PASSPHRASE=bench-pass
export RESTIC_CACHE_DIR=$out/restic-cache BORG_BASE_DIR=$out/borg-base
mount_pid=""
cleanup() {
  [ -n "$mount_pid" ] && kill "$mount_pid" 2> /dev/null && wait "$mount_pid" 2> /dev/null
  "$sparetime" umount "$mnt" > /dev/null 2>&1 || true
  umount "$mnt" 2> /dev/null || true
}
trap cleanup EXIT

# ---- the disk ----
disk=$out/disk.img
part_off=$((1 << 20))
fs_bytes=$(stat -c %s "$corpus/disk-v1.img")
truncate -s $((fs_bytes + 2 * part_off)) "$disk"
sgdisk -n 1:2048:+$((fs_bytes / 1024))K "$disk" > /dev/null
dd if="$corpus/disk-v1.img" of="$disk" bs=4M seek=$part_off oflag=seek_bytes conv=sparse,notrunc status=none
loop=$(losetup -f --show -o $part_off --sizelimit "$fs_bytes" "$disk")
mkdir -p "$out/src"; mount "$loop" "$out/src"
find /usr/lib /usr/share -type f -size +64k -print0 2> /dev/null | sort -z |
  xargs -0 cat 2> /dev/null | head -c 200000000 > "$out/src/data/big.bin" || true
[ "$(stat -c %s "$out/src/data/big.bin")" = 200000000 ] || bench_die "could not make the 200 MB file"
sync
first_block=$(filefrag -e "$out/src/data/big.bin" | awk '/^ *0:/ {gsub(/\.\./, " "); print $4; exit}')
block_size=$(stat -f -c %S "$out/src")
umount "$out/src"; losetup -d "$loop"
[ "${first_block:-0}" -gt 0 ] || bench_die "could not locate the 200 MB file on the disk (filefrag)"
range_off=$((part_off + first_block * block_size))
echo "200 MB file at disk offset $range_off" > "$STEPS/layout.txt"

# ---- backups (untimed here: bench/compare.sh times them) ----
"$sparetime" --repo "$out/sparetime-repo" init > /dev/null
"$sparetime" --repo "$out/sparetime-repo" backup "$disk" > /dev/null
restic -r "$out/restic-repo" init > /dev/null
(cd "$out" && restic -r "$out/restic-repo" backup disk.img > /dev/null)
borg init -e repokey-blake2 "$out/borg-repo" > /dev/null 2>&1
(cd "$out" && borg create "$out/borg-repo::a" disk.img > /dev/null)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", b - a}'; }

# wait_for PATH: polls until `ls PATH` works (60 s at most).
wait_for() {
  local i
  for i in $(seq 1 1200); do ls "$1" > /dev/null 2>&1 && return 0; sleep 0.05; done
  bench_die "$1 did not appear"
}

# start_mount TOOL: a cold mount; sets mount_pid; prints seconds to first ls.
start_mount() {
  bench_wait_quiet; bench_drop_caches
  local t0 t1 path
  t0=$(now)
  case $1 in
    sparetime)
      # shellcheck disable=SC2086
      "$sparetime" --repo "$out/sparetime-repo" mount latest "$mnt" --filesystems true \
        ${MOUNT_ARGS:-} > "$STEPS/mount.log" 2>&1 &
      path=$mnt/part1/data ;;
    restic)
      restic -r "$out/restic-repo" mount "$mnt" > "$STEPS/restic-mount.log" 2>&1 &
      path=$mnt/snapshots/latest/disk.img ;;
    borg)
      borg mount -f "$out/borg-repo::a" "$mnt" > "$STEPS/borg-mount.log" 2>&1 &
      path=$mnt/disk.img ;;
  esac
  mount_pid=$!
  wait_for "$path"
  t1=$(now)
  elapsed "$t0" "$t1"
}

stop_mount() {
  case $1 in
    sparetime) "$sparetime" umount "$mnt" > /dev/null ;;
    *) kill "$mount_pid"; sleep 1; umount "$mnt" 2> /dev/null || true ;;
  esac
  wait "$mount_pid" 2> /dev/null || true
  mount_pid=""
}

# read_mbs FILE [SKIP_BYTES]: MB/s of reading 200 MB.
read_mbs() {
  local t0 t1
  sync; echo 3 > /proc/sys/vm/drop_caches
  t0=$(now)
  dd if="$1" of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip="${2:-0}" count=200000000 status=none
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", 200 / (b - a)}'
}

rand_4k() {
  python3 - "$1" << 'EOF'
import mmap, os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
size = os.fstat(fd).st_size
buf = mmap.mmap(-1, 4096)
random.seed(24)
lat = []
for _ in range(1000):
    off = random.randrange(0, size // 4096) * 4096
    t = time.perf_counter()
    os.preadv(fd, [buf], off)
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"{lat[499]:.2f} {lat[989]:.2f}")
EOF
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

declare -A first_ls seq_range
for tool in sparetime restic borg; do
  : > "$STEPS/$tool.first-ls"; : > "$STEPS/$tool.seq-range"
  for r in $(seq 1 "$repeat"); do
    # Every read below starts with a fresh mount process (an empty chunk
    # cache) and a dropped page cache.
    start_mount "$tool" >> "$STEPS/$tool.first-ls"
    case $tool in
      sparetime) file=$mnt/disk.img ;;
      restic) file=$mnt/snapshots/latest/disk.img ;;
      borg) file=$mnt/disk.img ;;
    esac
    read_mbs "$file" "$range_off" >> "$STEPS/$tool.seq-range"
    stop_mount "$tool"
    if [ "$tool" = sparetime ]; then
      start_mount sparetime > /dev/null
      read_mbs "$mnt/part1/data/big.bin" >> "$STEPS/sparetime.seq-file"
      stop_mount sparetime
      start_mount sparetime > /dev/null
      rand_4k "$mnt/part1/data/big.bin" >> "$STEPS/sparetime.rand-4k"
      read_mbs "$mnt/part1/data/big.bin" > /dev/null
      awk '/VmHWM/ {print $2}' "/proc/$mount_pid/status" >> "$STEPS/sparetime.rss"
      stop_mount sparetime
    fi
  done
  first_ls[$tool]=$(median < "$STEPS/$tool.first-ls")
  seq_range[$tool]=$(median < "$STEPS/$tool.seq-range")
done
seq_file=$(median < "$STEPS/sparetime.seq-file")
# The cache bound: the same reads with a 64 MiB cache.
MOUNT_ARGS="--cache-mib 64" start_mount sparetime > /dev/null
rand_4k "$mnt/part1/data/big.bin" > /dev/null
read_mbs "$mnt/part1/data/big.bin" > /dev/null
rss64_kib=$(awk '/VmHWM/ {print $2}' "/proc/$mount_pid/status")
stop_mount sparetime
rand_p50=$(awk '{print $1}' "$STEPS/sparetime.rand-4k" | median)
rand_p99=$(awk '{print $2}' "$STEPS/sparetime.rand-4k" | median)
rss_kib=$(sort -n "$STEPS/sparetime.rss" | tail -1)
bench_step restore "$sparetime" --repo "$out/sparetime-repo" restore latest --to "$out/restored.img"
restore_wall=$(bench_res restore wall)
image_mb=$(awk -v b="$(stat -c %s "$disk")" 'BEGIN {printf "%.0f", b / 1e6}')
restore_mbs=$(awk -v m="$image_mb" -v w="$restore_wall" 'BEGIN {printf "%.0f", m / w}')
# Data only: the restore skips holes, so its MB/s over the whole image flatters it.
data_mb=$(awk -v k="$(du -k "$out/restored.img" | cut -f1)" 'BEGIN {printf "%.0f", k * 1024 / 1e6}')
restore_data_mbs=$(awk -v m="$data_mb" -v w="$restore_wall" 'BEGIN {printf "%.0f", m / w}')

{
  echo "# bench/mount.sh, $size MiB corpus, median of $repeat"
  bench_env
  echo
  echo "| measure | sparetime | restic | borg | target |"
  echo "|---|---|---|---|---|"
  echo "| mount → first ls (s) | ${first_ls[sparetime]} (part1/data, via ext4) | ${first_ls[restic]} (snapshots/latest/disk.img) | ${first_ls[borg]} (disk.img) | ≤ 2 s |"
  echo "| 200 MB of disk.img, sequential (MB/s) | ${seq_range[sparetime]} | ${seq_range[restic]} | ${seq_range[borg]} | ≥ 300 |"
  echo "| 200 MB file via ext4 + loop, sequential (MB/s) | $seq_file | – | – | ≥ 300, ≥ 0.5 × restore |"
  echo "| random 4 KiB in that file, p50 / p99 (ms) | $rand_p50 / $rand_p99 | – | – | |"
  echo "| mount process peak RSS (MiB) | $(bench_mib $((rss_kib * 1024))) (cache 256 MiB), $(bench_mib $((rss64_kib * 1024))) (cache 64 MiB) | – | – | bounded by the cache |"
  echo "| full restore (MB/s of image / of data) | $restore_mbs / $restore_data_mbs | – | – | |"
} > "$out/results.md"
cat "$out/results.md"
