# The project's .deb installs with dpkg, sparetimed starts under systemd
# (Type=notify, enabled and started by the package) and `sparetime status`
# answers that it runs, with the pid systemd knows. Then (issue 23): it runs
# as the sparetime user with its privileged helper as root; `systemctl
# reload` re-reads (journal line); `journalctl -p err` shows only errors; the
# helper killed -> sparetimed says so and systemd restarts it; the unit's
# systemd-analyze security figure; `systemctl stop` is clean; purge removes
# the user and the state.
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

# Privilege separation: sparetimed as sparetime, its helper (a child) as root.
getent passwd sparetime
[ "$(stat -c %U /var/lib/sparetime)" = sparetime ] || { echo "FAIL: /var/lib/sparetime is not sparetime's"; exit 1; }
[ "$(ps -o user:20= -p "$pid" | tr -d ' ')" = sparetime ] || { ps -o user:20,pid,comm -p "$pid"; echo "FAIL: sparetimed does not run as sparetime"; exit 1; }
helper=$(pgrep -P "$pid" -x sparetime-priv)
[ "$(ps -o user:20= -p "$helper" | tr -d ' ')" = root ] || { echo "FAIL: the helper does not run as root"; exit 1; }
ps -o user:20,pid,ppid,comm -p "$pid,$helper"
grep -E '^CapEff:\s+0+$' "/proc/$pid/status" || { grep Cap "/proc/$pid/status"; echo "FAIL: sparetimed kept capabilities"; exit 1; }
grep -E '^NoNewPrivs:\s+1$' "/proc/$pid/status"

# systemctl reload = SIGHUP: re-reads sparetime.conf and the directory.
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl reload sparetime.service
for _ in $(seq 30); do
  journalctl -u sparetime.service --since "$since" -o cat | grep -q '^reload: done' && break
  sleep 1
done
journalctl -u sparetime.service --since "$since" -o cat | grep -E '^reload: ' || { echo "FAIL: no reload line in the journal"; exit 1; }
[ "$(systemctl show -P MainPID sparetime.service)" = "$pid" ] || { echo "FAIL: reload restarted sparetimed"; exit 1; }

# Priorities: the info lines are not errors.
journalctl -u sparetime.service -o cat | grep -q '^serving peers on ' || { echo "FAIL: no info line"; exit 1; }
if journalctl -u sparetime.service -p err -o cat | grep -q '^serving peers on '; then
  echo "FAIL: journalctl -p err shows an info line"; exit 1
fi

# The helper killed: sparetimed reports it (priority err), exits 1, systemd restarts it.
since=$(date '+%Y-%m-%d %H:%M:%S')
kill -9 "$helper"
for _ in $(seq 60); do
  newpid=$(systemctl show -P MainPID sparetime.service)
  [ "$newpid" != "$pid" ] && [ "$newpid" != 0 ] && [ "$(systemctl show -P SubState sparetime.service)" = running ] && break
  sleep 1
done
journalctl -u sparetime.service --since "$since" -p err -o cat | tee /tmp/err.log
grep -E "^the privileged helper \(pid $helper\) is gone: killed by signal 9" /tmp/err.log || { echo "FAIL: the helper's death was not reported as an error"; exit 1; }
[ "$newpid" != "$pid" ] && [ "$(systemctl show -P SubState sparetime.service)" = running ] || { echo "FAIL: systemd did not restart sparetimed"; exit 1; }
pgrep -P "$newpid" -x sparetime-priv >/dev/null || { echo "FAIL: the restarted sparetimed has no helper"; exit 1; }
echo "OK: helper killed, reported, unit restarted (pid $pid -> $newpid)"

echo "systemd-analyze security:"
systemd-analyze security sparetime.service | tail -n 1

systemctl stop sparetime.service
[ "$(systemctl show -P Result sparetime.service)" = success ] || { echo "FAIL: stop was not clean ($(systemctl show -P Result sparetime.service))"; exit 1; }
[ "$(systemctl show -P ExecMainStatus sparetime.service)" = 0 ]
pgrep -x sparetime-priv && { echo "FAIL: the helper outlived the stop"; exit 1; }

if command -v apt-get >/dev/null; then apt-get purge -y sparetime; else dpkg --purge sparetime; fi
getent passwd sparetime && { echo "FAIL: purge left the sparetime user"; exit 1; }
[ ! -e /var/lib/sparetime ] || { echo "FAIL: purge left /var/lib/sparetime"; exit 1; }
echo "OK: privsep, reload, priorities, helper restart, clean stop, purge"
