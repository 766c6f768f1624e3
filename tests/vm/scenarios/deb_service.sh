# The project's .deb installs with dpkg, sparetimed starts under systemd
# (Type=notify, enabled and started by the package) and `sparetime status`
# answers that it runs, with the pid systemd knows.
set -euo pipefail
[ -n "$LAB_DEB" ] || { echo "FAIL: the lab was given no .deb (tests/vm/run --deb FILE)"; exit 1; }
dpkg -i "$LAB_DEB"
dpkg -s sparetime | grep -E '^(Status|Version):'
[ -x /usr/bin/sparetime ] && [ -x /usr/sbin/sparetimed ]
[ "$(systemctl is-enabled sparetime.service)" = enabled ]
for _ in $(seq 120); do
  [ "$(systemctl show -P ActiveState sparetime.service)" = activating ] || break
  sleep 1
done
systemctl status --no-pager sparetime.service || true
[ "$(systemctl show -P ActiveState sparetime.service)" = active ] || { echo "FAIL: sparetime.service is not active"; exit 1; }
[ "$(systemctl show -P SubState sparetime.service)" = running ]
pid=$(systemctl show -P MainPID sparetime.service)
exe=$(readlink "/proc/$pid/exe")
echo "sparetimed: pid $pid, $exe"
[ "$exe" = /usr/sbin/sparetimed ]
rc=1
for _ in $(seq 60); do
  rc=0; sparetime status > /tmp/status 2>&1 || rc=$?
  [ "$rc" = 0 ] && break
  sleep 1
done
cat /tmp/status
[ "$rc" = 0 ] || { echo "FAIL: sparetime status exited $rc"; exit 1; }
grep -E "^sparetimed: running as lab \(pid $pid\), status updated " /tmp/status
grep -F 'directory:  /etc/sparetime/directory.ldif (ou=sparetime,dc=example,dc=org), read ' /tmp/status
echo "OK: installed, running under systemd, status answered"
