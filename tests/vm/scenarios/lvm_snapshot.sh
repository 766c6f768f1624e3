# An LVM volume on a second virtual disk, read through a snapshot by
# sparetime itself: the snapshot keeps the old bytes while the origin
# changes; `sparetime backup` of the snapshot LV, then `restore`, gives back
# exactly the bytes the volume had when the snapshot was taken.
# Then issue 20: `--consistency snapshot` of mounted ext4 LVs a writer keeps
# changing (classic, with a stale <lv>-sparetime-snap removed first; thin,
# picked by auto), restored, fsck clean, every file fsynced before the backup
# byte-identical, no snapshot left; a CoW snapshot that fills up exits 7 and
# records nothing; no lvm2 tools: exit 5. And section 5: an 8 GiB thin LV's
# incrementals read only what thin_delta reports changed (bytes read from the
# kept base's /sys/block/dm-N/stat), a broken chain reads in full, and every
# restore is fsck clean with every file byte-identical.
# lab-packages: lvm2 thin-provisioning-tools
# lab-disk: 640M
# lab-timeout: 3000
set -euo pipefail
disk=${LAB_DISKS%% *}
pkg=/tmp/pkg
dpkg-deb -x "$LAB_DEB" "$pkg"            # the .deb's own binaries
st() { "$pkg/usr/bin/sparetime" --repo /tmp/repo "$@"; }
export SPARETIME_PASSPHRASE='lab passphrase'

pvcreate -q "$disk"
vgcreate -q lab "$disk"
lvcreate -q -y -n data -L 64M lab
udevadm settle
dd if=/dev/urandom of=/dev/lab/data bs=1M count=64 oflag=direct status=none
dd if=/dev/lab/data of=/tmp/before bs=1M iflag=direct status=none
lvcreate -q -y -s -n snap -L 32M lab/data
udevadm settle
# The origin changes after the snapshot: 8 MiB at offset 4 MiB.
dd if=/dev/urandom of=/dev/lab/data bs=1M count=8 seek=4 oflag=direct status=none
if cmp -s /dev/lab/data /tmp/before; then echo "FAIL: the origin did not change"; exit 1; fi
cmp /dev/lab/snap /tmp/before
echo "snapshot holds the old bytes while the origin changed"
lvs lab

st init --kdf min   # Argon2id "moderate" (256 MiB) is slow under TCG
st backup /dev/lab/snap --label lvm-snapshot
st snapshots
lvremove -q -y lab/snap
st restore latest --to /tmp/restored
size=$(stat -c %s /tmp/restored)
echo "restored $size bytes"
[ "$size" = $((64 * 1024 * 1024)) ]
cmp /tmp/restored /tmp/before
echo "OK: sparetime backed up the snapshot LV and restored it byte for byte"

# ---- issue 20: --consistency snapshot (sparetime's own LVM snapshots) ----
count() { st --json snapshots | { grep -o '"id":' || true; } | wc -l; }
no_snap_left() {  # LV
  if lvs "lab/$1-sparetime-snap" >/dev/null 2>&1; then echo "FAIL: lab/$1-sparetime-snap left behind"; exit 1; fi
}
# writer DIR: files 0,1,2,... each written and fsynced, its number logged after the fsync.
writer() {
  local i=0
  mkdir -p "$1"
  while :; do
    head -c $((4096 + (i * 7919) % 61440)) /dev/urandom > "$1/$i.tmp"
    sync "$1/$i.tmp"; mv "$1/$i.tmp" "$1/$i"; sync "$1"
    sha256sum "$1/$i" >> "/tmp/$(basename "$1").log"
    i=$((i + 1))
  done
}
# check_restore LV DIR: restore latest of /dev/lab/LV onto lab/restore (no
# loop devices in the guest), fsck it, and find every file the writer had
# finished before the backup (listed in /tmp/DIR.before), byte-identical.
check_restore() {
  lvs lab/restore >/dev/null 2>&1 || { lvcreate -q -y -n restore -L 64M lab; udevadm settle; }
  st restore latest --device "/dev/lab/$1" --to /dev/lab/restore
  e2fsck -fn /dev/lab/restore
  mkdir -p /mnt/restore
  mount -o ro /dev/lab/restore /mnt/restore
  local n
  n=$(wc -l < "/tmp/$2.before")
  [ "$n" -gt 0 ] || { echo "FAIL: the writer finished no file before the backup"; exit 1; }
  (cd /mnt/restore && sha256sum -c --quiet "/tmp/$2.before")
  echo "restored /dev/lab/$1: fsck clean, all $n files fsynced before the backup are byte-identical"
  umount /mnt/restore
}
# backup_while_writing LV MODE EXTRA...: mount, start the writer, back up, stop it.
backup_while_writing() {
  local lv=$1 mode=$2; shift 2
  mkfs.ext4 -q -F "/dev/lab/$lv"
  mkdir -p "/mnt/$lv"; mount "/dev/lab/$lv" "/mnt/$lv"
  writer "/mnt/$lv/w$lv" & local wpid=$!
  sleep 2
  sed 's| /mnt/'"$lv"'/| ./|' "/tmp/w$lv.log" > "/tmp/w$lv.before"
  st --json backup "/dev/lab/$lv" --consistency "$mode" "$@" > "/tmp/$lv.json"
  kill "$wpid"; wait "$wpid" 2>/dev/null || true
  grep -q '"consistency":"snapshot"' "/tmp/$lv.json" || { echo "FAIL: not taken as snapshot"; cat "/tmp/$lv.json"; exit 1; }
  umount "/mnt/$lv"
  no_snap_left "$lv"
}

# Classic CoW: a stale snapshot of a killed agent first, then the backup.
lvcreate -q -y -n data-sparetime-snap -s -L 8M lab/data
udevadm settle
backup_while_writing data snapshot --snapshot-size 48M
echo "classic: the stale lab/data-sparetime-snap was removed and sparetime's own is gone"
check_restore data wdata

# Thin: auto picks a snapshot for an LVM volume; a thin snapshot needs no size.
lvcreate -q -y -L 200M -T lab/pool
lvcreate -q -y -V 64M -T lab/pool -n thin
udevadm settle
backup_while_writing thin auto
check_restore thin wthin

# A CoW snapshot that fills up: 4 MiB of CoW, a slow backup (--bwlimit 1M), and
# 40 MiB written to the origin meanwhile.
before=$(count)
mount /dev/lab/data /mnt/data
# The writes start once sparetime's snapshot exists (lvcreate takes seconds
# under TCG: writes before it would not touch the CoW space).
( until lvs lab/data-sparetime-snap >/dev/null 2>&1; do sleep 0.2; done
  dd if=/dev/urandom of=/mnt/data/fill bs=1M count=40 oflag=direct status=none; sync ) &
fill=$!
set +e
st backup /dev/lab/data --consistency snapshot --snapshot-size 4M --bwlimit 1M 2> /tmp/full.err
rc=$?
set -e
wait "$fill"
cat /tmp/full.err
[ "$rc" = 7 ] || { echo "FAIL: a filled CoW snapshot exited $rc, not 7"; exit 1; }
grep -q "filled up" /tmp/full.err
[ "$(count)" = "$before" ] || { echo "FAIL: a snapshot was recorded"; exit 1; }
no_snap_left data
touch /mnt/data/still-writable && umount /mnt/data
echo "a filled CoW snapshot failed the backup with exit 7, was removed, recorded nothing"

# No lvm2 tools on PATH.
set +e
PATH=/nonexistent "$pkg/usr/bin/sparetime" --repo /tmp/repo backup /dev/lab/data --consistency snapshot 2> /tmp/tools.err
rc=$?
set -e
cat /tmp/tools.err
[ "$rc" = 5 ] && grep -q "lvm2" /tmp/tools.err
echo "OK: consistency snapshot (classic, thin, stale, full, no tools)"
lvs lab/thin-sparetime-base >/dev/null || { echo "FAIL: the thin backup kept no base"; exit 1; }

# ---- issue 20 section 5: thin_delta incrementals of an 8 GiB thin volume ----
# Bytes read from an LV's device-mapper device since it appeared
# (/sys/block/dm-N/stat, sectors read): the kept base is the snapshot the
# backup read, so this is what that backup read (plus udev's probe).
dm_read() { local d; d=$(basename "$(readlink -f "/dev/lab/$1")"); awk '{print $3 * 512}' "/sys/block/$d/stat"; }
MiB=$((1024 * 1024))
lvcreate -q -y -V 8G -T lab/pool -n big
udevadm settle
mkfs.ext4 -q -F -N 16384 -J size=8 -E lazy_itable_init=0,lazy_journal_init=0 /dev/lab/big
mkdir -p /mnt/big && mount /dev/lab/big /mnt/big
for f in 1 2 3; do head -c $((8 * MiB)) /dev/urandom > "/mnt/big/f$f"; done
sync
# big_backup NAME: backup of the mounted volume; its stderr in /tmp/NAME.err,
# the bytes it read in $got.
big_backup() {
  no_snap_left big
  st --json backup /dev/lab/big --consistency snapshot > "/tmp/$1.json" 2> "/tmp/$1.err"
  cat "/tmp/$1.err"
  no_snap_left big
  got=$(dm_read big-sparetime-base)
  echo "$1: read $got bytes of the 8 GiB volume"
}
# big_restore SPEC: restore SPEC onto a sparse file, fsck it, compare every file.
big_restore() {
  rm -f /tmp/big.img
  st restore "$1" --device /dev/lab/big --to /tmp/big.img
  [ "$(stat -c %s /tmp/big.img)" = $((8 * 1024 * MiB)) ]
  e2fsck -fn /tmp/big.img
  local f
  for f in $(cd /mnt/big && ls f*); do
    [ "$(debugfs -R "cat /$f" /tmp/big.img 2>/dev/null | sha256sum)" = "$(sha256sum < "/tmp/sums/$f")" ] ||
      { echo "FAIL: $f differs after restoring $1"; exit 1; }
  done
  echo "restored $1: fsck clean, $(cd /mnt/big && ls f* | wc -l) files byte-identical"
}
keep_sums() { rm -rf /tmp/sums; mkdir -p /tmp/sums; local f; for f in /mnt/big/f*; do cp "$f" /tmp/sums/; done; }

big_backup full
grep -q "changed blocks not known (there is no earlier thin snapshot lab/big-sparetime-base)" /tmp/full.err
full=$got
[ "$full" -ge $((24 * MiB)) ] || { echo "FAIL: the first backup read only $full bytes"; exit 1; }
keep_sums

big_backup unchanged
grep -q "notice: thin_delta since snapshot" /tmp/unchanged.err
unchanged=$got
[ "$unchanged" -le $((8 * MiB)) ] ||
  { echo "FAIL: the unchanged incremental read $unchanged bytes (more than 8 MiB)"; exit 1; }
big_restore latest

# 16 MiB new, 1 MiB rewritten in place.
head -c $((16 * MiB)) /dev/urandom > /mnt/big/f4
dd if=/dev/urandom of=/mnt/big/f1 bs=1M count=1 seek=2 conv=notrunc status=none
sync
keep_sums
big_backup changed
grep -q "notice: thin_delta since snapshot" /tmp/changed.err
changed=$got
[ "$changed" -ge $((17 * MiB)) ] && [ "$changed" -le $((17 * MiB + 8 * MiB)) ] ||
  { echo "FAIL: the changed incremental read $changed bytes, not 17 MiB + at most 8 MiB"; exit 1; }
big_restore latest

# A broken chain (the base removed): a full read, still correct.
lvremove -q -f lab/big-sparetime-base
big_backup broken
grep -q "changed blocks not known (there is no earlier thin snapshot" /tmp/broken.err
[ "$got" -ge $((40 * MiB)) ] || { echo "FAIL: the backup after a broken chain read only $got bytes"; exit 1; }
big_restore latest
umount /mnt/big
echo "OK: thin_delta: full $full, unchanged $unchanged, changed (17 MiB written) $changed bytes read; broken chain read in full; every restore correct"
