# The guest runs Debian 12's own kernel (6.1, the one linux-image-amd64
# names, which the lab extracted) with systemd as PID 1, no failed units,
# and the device-mapper targets LVM needs.
set -euo pipefail
r=$(uname -r)
echo "uname -r: $r (expected $LAB_KERNEL_VERSION)"
[[ $r =~ ^6\.1\.0-[0-9]+-amd64$ ]] || { echo "FAIL: not Debian 12's 6.1.0-N-amd64 kernel"; exit 1; }
[ "$r" = "$LAB_KERNEL_VERSION" ] || { echo "FAIL: not the kernel the lab extracted"; exit 1; }
grep -q 'Debian' /proc/version || { echo "FAIL: /proc/version names no Debian build"; exit 1; }
echo "PID 1: $(cat /proc/1/comm)"
[ "$(cat /proc/1/comm)" = systemd ] || { echo "FAIL: PID 1 is not systemd"; exit 1; }
failed=$(systemctl list-units --failed --no-legend --plain | wc -l)
echo "failed units: $failed"
[ "$failed" = 0 ] || { systemctl list-units --failed --no-pager; exit 1; }
for m in dm_mod dm_snapshot dm_thin_pool; do modprobe "$m"; done
grep -E '^(dm_snapshot|dm_thin_pool) ' /proc/modules
[ "$(grep -cE '^(dm_snapshot|dm_thin_pool) ' /proc/modules)" = 2 ]
echo "OK: Debian kernel $r, systemd, device-mapper"
