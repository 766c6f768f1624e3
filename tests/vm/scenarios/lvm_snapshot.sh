# An LVM volume on a second virtual disk, read through a snapshot by
# sparetime itself: the snapshot keeps the old bytes while the origin
# changes; `sparetime backup` of the snapshot LV, then `restore`, gives back
# exactly the bytes the volume had when the snapshot was taken.
# lab-packages: lvm2
# lab-disk: 256M
# lab-timeout: 900
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

st init
st backup /dev/lab/snap --label lvm-snapshot
st snapshots
lvremove -q -y lab/snap
st restore latest --to /tmp/restored
size=$(stat -c %s /tmp/restored)
echo "restored $size bytes"
[ "$size" = $((64 * 1024 * 1024)) ]
cmp /tmp/restored /tmp/before
echo "OK: sparetime backed up the snapshot LV and restored it byte for byte"
