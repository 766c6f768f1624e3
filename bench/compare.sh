#!/usr/bin/env bash
# Side-by-side benchmark: sparetime vs restic vs borg vs partclone+zstd on the
# same disk-image corpus (see bench/README.md and docs/performance.md).
#
# Usage: bench/compare.sh [--size MIB] [--out DIR] [--tools "sparetime restic ..."]
#                         [--repeat N] [--no-sparse]
#   --size MIB   corpus size (default 2048); the corpus is built once and cached
#                in $BENCH_CACHE (default /var/tmp/sparetime-bench)
#   --out DIR    where repos, logs and results.md go (default
#                $BENCH_CACHE/compare-<size>-<time>); must be on the same
#                filesystem as the cache (the source image is a hard link)
#   --tools      any of: sparetime (defaults: KDF moderate, the key kept in the
#                kernel keyring from init on), sparetime-coldkey (the same with
#                --key-cache 0: every command pays Argon2id), sparetime-kdfmin
#                (--kdf min --key-cache 0: the data path without any KDF),
#                restic, borg, partclone (`partclone.ext4 -c -s IMG -o - |
#                zstd -T2 -3`, what Clonezilla users keep: used blocks only, a
#                whole new image per backup, no dedup; its restore leaves free
#                space zero, so it is checked with e2fsck -fn, not cmp)
#                (default: sparetime sparetime-coldkey restic borg partclone);
#                also sparetime-zN (--kdf min --compression N: zstd level N, not
#                3) and sparetime-blake2b / sparetime-hmac (--kdf min --id-hash
#                blake2b / hmac-sha256: the two chunk-id functions)
#   --repeat N   run every tool's sequence N times (fresh repos each time) and
#                keep each step's fastest run: on a shared machine this filters
#                out moments of foreign load (default 1)
#   --no-sparse  skip the sparetime memory test on 2 GiB and 64 GiB sparse files
#   --report-only N  run nothing: write results.md from the first N runs already
#                in --out DIR (a run stopped early, e.g. on a busy machine)
#   (the options above this line are printed by --help)
# Env: SPARETIME_BIN (default build/agent/sparetime), BENCH_CACHE, MAKE_CORPUS,
#      BENCH_QUIET_WAIT=SEC (before each step wait up to SEC for an idle machine).
#
# Each tool: init, full backup of disk-v1.img, incremental backup of
# disk-v2.img into the same repo, restore of the v2 snapshot to a file (then
# compared with disk-v2.img), bytes stored (du -sb of the repo). Every tool
# backs up the same path, SRC=<corpus>/current/disk.img, a hard link first to
# disk-v1.img and then to disk-v2.img: the same file name with new content, so
# restic's and borg's file caches see a changed file and read it all, as
# sparetime does. Bytes stored are also taken after the full backup alone
# (the target against partclone+zstd's disk-v1 image).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

size=2048 out="" tools="sparetime sparetime-coldkey restic borg partclone" sparse=1 repeat=1
report_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --no-sparse) sparse=0; shift ;;
    --report-only) report_only=1 repeat=$2; shift 2 ;;
    -h|--help) sed -n '2,/printed by --help/p' "$0"; exit 0 ;;
    *) bench_die "unknown argument $1 (see --help)" ;;
  esac
done
bench_require_root
cache=${BENCH_CACHE:-/var/tmp/sparetime-bench}
sparetime=$(bench_find_sparetime)
for t in $tools; do
  bin=$t; [ "$t" = partclone ] && bin=partclone.ext4
  [[ $t == sparetime* ]] || command -v "$bin" > /dev/null ||
    bench_die "$bin not installed: apt-get install -y restic borgbackup partclone zstd"
done
corpus=$(bench_corpus "$size")
out=${out:-$cache/compare-$size-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"; out=$(cd "$out" && pwd)
STEPS=$out/steps; mkdir -p "$STEPS"
src=$corpus/current/disk.img
mkdir -p "$corpus/current"
link_src() { ln -f "$corpus/$1" "$src" || bench_die "cannot hard-link $corpus/$1 to $src"; }

export SPARETIME_PASSPHRASE=bench-passphrase RESTIC_PASSWORD=bench-passphrase \
  BORG_PASSPHRASE=bench-passphrase RESTIC_CACHE_DIR=$out/cache/restic \
  BORG_BASE_DIR=$out/cache/borg BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# ST=(the sparetime command line of tool $1): its repo, and the key cache off
# for every variant but the default one.
st() {
  ST=("$sparetime" --repo "$out/repo-$1")
  [ "$1" = sparetime ] || ST+=(--key-cache 0)
}
# Per tool: init ARGS, backup LABEL, restore DIR (prints the restored file), open.
tool_init() {
  local t=$1 repo=$out/repo-$1
  case $t in
    sparetime|sparetime-coldkey) st "$t"; "${ST[@]}" -q init ;;  # default KDF (moderate)
    sparetime-kdfmin) st "$t"; "${ST[@]}" -q init --kdf min ;;
    sparetime-z*) st "$t"; "${ST[@]}" -q init --kdf min --compression "${t#sparetime-z}" ;;
    sparetime-blake2b) st "$t"; "${ST[@]}" -q init --kdf min --id-hash blake2b ;;
    sparetime-hmac) st "$t"; "${ST[@]}" -q init --kdf min --id-hash hmac-sha256 ;;
    partclone) mkdir -p "$repo" ;;
    restic) restic -q -r "$repo" init --repository-version 2 ;;
    borg) borg init -e repokey-blake2 "$repo" ;;
  esac
}
tool_backup() {
  local t=$1 repo=$out/repo-$1 label=$2
  case $t in
    sparetime*) st "$t"; bench_step "$t-$label.r$rep" "${ST[@]}" --json backup "$src" --label "$label" ;;
    restic) bench_step "$t-$label.r$rep" restic -r "$repo" backup --compression auto --host bench --json "$src" ;;
    borg) bench_step "$t-$label.r$rep" borg create --compression zstd,3 --stats "$repo::$label" "$src" ;;
    partclone) bench_step "$t-$label.r$rep" bash -c 'set -o pipefail
      partclone.ext4 -c -s "$1" -o - -L "$3" | zstd -T2 -3 -q -f -o "$2"' _ \
      "$src" "$repo/$label.pcl.zst" "$STEPS/$t-$label.r$rep.log" ;;
  esac
}
tool_restore() {  # restores the latest (v2) snapshot under $1; prints the file
  local t=$1 repo=$out/repo-$1 dir=$2
  case $t in
    sparetime*) st "$t"; bench_step "$t-restore.r$rep" "${ST[@]}" --json restore latest --to "$dir/disk.img"
      echo "$dir/disk.img" ;;
    # restic 0.14 has no sparse restore: it writes the zero ranges too.
    restic) bench_step "$t-restore.r$rep" restic -r "$repo" restore latest --target "$dir"
      echo "$dir$src" ;;
    borg) (cd "$dir" && bench_step "$t-restore.r$rep" borg extract --sparse "$repo::v2")
      echo "$dir/${src#/}" ;;
    # partclone writes into an existing file of the right size (-O: overwrite)
    partclone) truncate -s "$(stat -c %s "$src")" "$dir/disk.img"
      bench_step "$t-restore.r$rep" bash -c 'set -o pipefail
        zstd -dc -T2 "$1" | partclone.ext4 -r -s - -O "$2" -L "$3"' _ \
        "$repo/v2.pcl.zst" "$dir/disk.img" "$STEPS/$t-restore.r$rep.log"
      echo "$dir/disk.img" ;;
  esac
}
tool_open() {  # a read-only command: the per-invocation cost (KDF, index load)
  local t=$1 repo=$out/repo-$1
  case $t in
    sparetime*) st "$t"; bench_step "$t-open.r$rep" "${ST[@]}" --json snapshots ;;
    restic) bench_step "$t-open.r$rep" restic -r "$repo" snapshots ;;
    borg) bench_step "$t-open.r$rep" borg list "$repo" ;;
    partclone) bench_step "$t-open.r$rep" ls -l "$repo" ;;  # no repository to open
  esac
}
# The restored image against disk-v2.img: byte for byte for restic and borg;
# partclone and sparetime restore used blocks only (free space stays zero,
# docs/formats.md "Used-blocks images"): e2fsck must find the filesystem
# clean, and sparetime's must hold the same files as disk-v2.img (both mounted
# read-only, diff -r).
check_restore() {
  local t=$1 restored=$2
  case $t in
    partclone|sparetime*)
      e2fsck -fn "$restored" > "$STEPS/$t-restore.fsck" 2>&1 ||
        bench_die "$t restored an image e2fsck does not pass (see $STEPS/$t-restore.fsck)"
      [ "$t" = partclone ] && return 0
      local a b rc=0
      a=$(mktemp -d) b=$(mktemp -d)
      mount -o ro,loop,noload "$restored" "$a" && mount -o ro,loop,noload "$corpus/disk-v2.img" "$b" &&
        { diff -r --no-dereference "$a" "$b" > "$STEPS/$t-restore.diff" 2>&1 || rc=1; } || rc=2
      umount "$a" 2>/dev/null || true; umount "$b" 2>/dev/null || true; rmdir "$a" "$b"
      [ "$rc" = 0 ] || bench_die "$t restored an image whose files differ from disk-v2.img's (see $STEPS/$t-restore.diff)" ;;
    *) cmp "$restored" "$corpus/disk-v2.img" || bench_die "$t restored an image that differs from disk-v2.img" ;;
  esac
}

[ "$report_only" = 0 ] || [ -n "$out" ] || bench_die "--report-only needs --out DIR of the run"
if [ "$report_only" = 0 ]; then
{ bench_env
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
  echo "corpus: $size MiB ext4 images, $(du -s -B1 "$corpus/disk-v1.img" | cut -f1) / $(du -s -B1 "$corpus/disk-v2.img" | cut -f1) bytes allocated (v1 / v2)"
  echo "sparetime: $sparetime (git $(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown))"
  for t in restic borg; do case " $tools " in *" $t "*) echo "$t: $($t version 2>/dev/null || $t --version)" ;; esac; done
  case " $tools " in *" partclone "*) echo "partclone: $(dpkg-query -W -f='${Version}' partclone), zstd: $(zstd -V)" ;; esac
} > "$out/env.txt"
cat "$out/env.txt"
fi

[ "$report_only" = 1 ] || for rep in $(seq 1 "$repeat"); do
  for t in $tools; do
    echo "== $t (run $rep of $repeat)" >&2
    rm -rf "$out/repo-$t" "$out/restore-$t"
    tool_init "$t" > "$STEPS/$t-init.out" 2>&1 || { cat "$STEPS/$t-init.out" >&2; bench_die "$t init failed"; }
    link_src disk-v1.img; tool_backup "$t" v1
    du -sb "$out/repo-$t" | cut -f1 > "$STEPS/$t-stored-v1"
    link_src disk-v2.img; tool_backup "$t" v2
    du -sb "$out/repo-$t" | cut -f1 > "$STEPS/$t-stored"
    tool_open "$t"
    mkdir -p "$out/restore-$t"
    restored=$(tool_restore "$t" "$out/restore-$t")
    check_restore "$t" "$restored"
    rm -rf "$out/restore-$t"
    echo "  full $(bench_res "$t-v1.r$rep" wall)s, incr $(bench_res "$t-v2.r$rep" wall)s, restore $(bench_res "$t-restore.r$rep" wall)s, restore verified" >&2
  done
done
for t in $tools; do
  for s in v1 v2 restore open; do bench_best "$t-$s" "$repeat"; bench_median "$t-$s" "$repeat"; done
done

# sparetime's memory on sparse files: 16 x 256 KiB of random data spread over
# an otherwise empty file; peak RSS should not grow with the device size.
[ "$report_only" = 1 ] || echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)" >> "$out/env.txt"
if [ "$report_only" = 0 ] && [ "$sparse" = 1 ] && [[ " $tools " == *" sparetime "* ]]; then
  for gib in 2 64; do
    f=$out/sparse-${gib}G.img; rm -f "$f"; truncate -s "${gib}G" "$f"
    for i in $(seq 0 15); do
      dd if=/dev/urandom of="$f" bs=256K count=1 conv=notrunc status=none \
        seek=$(( i * gib * 4096 / 16 + 7 ))  # in 256 KiB blocks, not chunk-aligned
    done
    rm -rf "$out/repo-sparse-$gib"
    # --kdf min: Argon2id's 256 MiB (moderate) would hide the data path's peak.
    "$sparetime" -q --repo "$out/repo-sparse-$gib" init --kdf min
    echo "== sparetime sparse ${gib} GiB" >&2
    bench_step "sparse-${gib}G" "$sparetime" --json --repo "$out/repo-sparse-$gib" backup "$f"
    rm -f "$f"
  done
fi

# ---- results ----
row() {  # tool: one markdown row of the main table
  local t=$1
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" \
    "$(bench_res "$t-v1" wall)" "$(bench_res "$t-v1" cpu)" "$(bench_res "$t-v2" wall)" \
    "$(bench_res "$t-restore" wall)" "$(bench_mib "$(cat "$STEPS/$t-stored")")" \
    "$(bench_mib "$(cat "$STEPS/$t-stored-v1")")" \
    "$(bench_mib $(( $(bench_res "$t-v1" rss) * 1024 )))"
}
{
  sed 's/^/    /' "$out/env.txt"
  echo
  echo "### Main table ($size MiB corpus, best of $repeat runs)"
  echo
  echo "| tool | full wall s | full CPU s | incr wall s | restore wall s | stored MiB | stored after v1 MiB | peak RSS (full) MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for t in $tools; do row "$t"; done
  echo
  echo "### Every step (wall s / CPU s / peak RSS MiB / foreign load in cores)"
  echo
  echo "Wall includes the final sync. Foreign load: CPU that other processes used"
  echo "during the step; above ~0.2 cores the wall time is inflated."
  echo
  echo "| tool | full | incr | restore | open (snapshots/list) |"
  echo "|---|---|---|---|---|"
  for t in $tools; do
    cells=""
    for s in v1 v2 restore open; do
      cells="$cells | $(bench_res "$t-$s" wall) / $(bench_res "$t-$s" cpu) / $(bench_mib $(( $(bench_res "$t-$s" rss) * 1024 ))) / $(bench_res "$t-$s" foreign)"
    done
    echo "| $t$cells |"
  done
  meets() { awk -v r="$1" -v t="$2" 'BEGIN {print (r + 0 <= t + 0) ? "met" : "MISSED"}'; }
  verdict() {  # name a b target [median-a median-b]
    local r m="-" mv="-"; r=$(bench_ratio "$2" "$3")
    if [ $# -gt 4 ]; then m=$(bench_ratio "$5" "$6"); mv=$(meets "$m" "$4"); fi
    printf '| %s | %s | %s | %s | %s | ≤ %s | %s | %s |\n' "$1" "$2" "$3" "$r" "$m" "$4" \
      "$(meets "$r" "$4")" "$mv"
  }
  walls() {  # step st: the best and median wall times of st and restic
    echo "$(bench_res "$2-$1" wall) $(bench_res "restic-$1" wall)" \
      "$(bench_res "$2-$1.median" wall) $(bench_res "restic-$1.median" wall)"
  }
  for st in $tools; do
    [[ $st == sparetime* && " $tools " == *" restic "* ]] || continue
    echo
    echo "### $st / restic against the targets"
    echo
    echo "Wall times and the first ratio are each tool's best of $repeat runs; the"
    echo "second ratio is of the median runs."
    echo
    echo "| measure | $st | restic | ratio | median ratio | target | verdict | median verdict |"
    echo "|---|---:|---:|---:|---:|---:|---|---|"
    # issue 20 section 6's targets
    read -r a b ma mb <<< "$(walls v1 "$st")"; verdict "full backup wall s" "$a" "$b" 0.25 "$ma" "$mb"
    read -r a b ma mb <<< "$(walls v2 "$st")"; verdict "incremental wall s" "$a" "$b" 0.15 "$ma" "$mb"
    read -r a b ma mb <<< "$(walls restore "$st")"
    verdict "restore wall s" "$a" "$b" 0.30 "$ma" "$mb"
    verdict "stored bytes after v1+v2" "$(cat "$STEPS/$st-stored")" "$(cat "$STEPS/restic-stored")" 0.90
    verdict "peak RSS KiB (full)" "$(bench_res "$st-v1" rss)" "$(bench_res restic-v1 rss)" 0.5
  done
  for st in $tools; do
    [[ $st == sparetime* && " $tools " == *" partclone "* ]] || continue
    echo
    echo "### $st / partclone+zstd (issue 20 §6)"
    echo
    echo "| measure | $st | partclone+zstd | ratio | target | verdict |"
    echo "|---|---:|---:|---:|---:|---|"
    r=$(bench_ratio "$(cat "$STEPS/$st-stored-v1")" "$(cat "$STEPS/partclone-stored-v1")")
    printf '| bytes stored after disk-v1 | %s | %s | %s | ≤ 0.90 | %s |\n' \
      "$(cat "$STEPS/$st-stored-v1")" "$(cat "$STEPS/partclone-stored-v1")" "$r" "$(meets "$r" 0.90)"
  done
  if [ -f "$STEPS/sparse-2G.res" ]; then
    echo
    echo "### sparetime on sparse files (16 x 256 KiB of data, repo with --kdf min)"
    echo
    echo "| file size | wall s | CPU s | peak RSS MiB |"
    echo "|---|---:|---:|---:|"
    for gib in 2 64; do
      echo "| $gib GiB | $(bench_res "sparse-${gib}G" wall) | $(bench_res "sparse-${gib}G" cpu) | $(bench_mib $(( $(bench_res "sparse-${gib}G" rss) * 1024 ))) |"
    done
  fi
} > "$out/results.md"
cat "$out/results.md"
echo
echo "results: $out/results.md, logs: $STEPS (repos kept in $out; remove when done)"
