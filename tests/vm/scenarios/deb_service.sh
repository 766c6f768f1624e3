# The project's .deb installs with dpkg, sparetimed starts under systemd
# (Type=notify, enabled by the package) and `sparetime status` answers.
set -euo pipefail
[ -n "$LAB_DEB" ] || { echo "FAIL: the lab was given no .deb (tests/vm/run --deb FILE)"; exit 1; }
dpkg -i "$LAB_DEB"
systemctl is-enabled sparetime.service
for _ in $(seq 90); do
  systemctl is-active -q sparetime.service && break
  sleep 1
done
systemctl status --no-pager sparetime.service || true
[ "$(systemctl show -P ActiveState sparetime.service)" = active ]
[ "$(systemctl show -P SubState sparetime.service)" = running ]
echo "sparetimed: $(systemctl show -P MainPID sparetime.service) $(readlink /proc/"$(systemctl show -P MainPID sparetime.service)"/exe)"
sparetime status | tee /tmp/status
echo "OK: installed, running under systemd, status answered"
