#!/usr/bin/env bash
# The VM lab's own tests: every bad input it handles gives a clear error and
# leaves nothing half-done behind. ctest runs one case per test (vm.lab.*).
# Usage: tests/vm/lab_test.sh CASE
#   no_qemu              skip with the package to install, exit 77
#   bad_scenario         missing file, bad headers: exit 2 and what to fix
#   archive_unreachable  no archive / a broken one: clear error, no image cached
#   guest_hangs          killed at the bound, console tail shown, exit 3
#   scenario_fails       its output, exit status and journal shown, exit 1
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/sparetime-vm-test.XXXXXX)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_rc WANT CMD...: runs CMD (stdout+stderr to $tmp/out), checks its status.
expect_rc() {
  local want=$1 rc=0; shift
  "$@" >"$tmp/out" 2>&1 || rc=$?
  echo "\$ $* -> exit $rc"; sed 's/^/  | /' "$tmp/out"
  [ "$rc" = "$want" ] || fail "exit status $rc, want $want"
}
has() { grep -qF -- "$1" "$tmp/out" || fail "output lacks: $1"; }
count() { local n; n=$(grep -cF -- "$1" "$tmp/out" || true); [ "$n" = "$2" ] || fail "'$1' appears $n times, want $2"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "${1:-}" in
no_qemu)
  export SPARETIME_VM_QEMU=/nonexistent/qemu-system-x86_64 SPARETIME_VM_CACHE=$tmp/cache
  msg="skipped: qemu-system-x86 not installed (apt-get install qemu-system-x86, or run scripts/install-deps)"
  expect_rc 77 "$LAB/run" "$LAB/scenarios/debian_kernel.sh"
  has "$msg"; count "$msg" 1
  expect_rc 77 "$LAB/build-image"
  has "$msg"
  [ ! -e "$tmp/cache/images" ] || fail "a skipped build created $tmp/cache/images"
  ;;
bad_scenario)
  expect_rc 2 "$LAB/run" "$tmp/nonexistent.sh"
  has "no scenario file '$tmp/nonexistent.sh'"
  printf '# lab-disk: lots\ntrue\n' > "$tmp/bad_disk.sh"
  expect_rc 2 "$LAB/run" "$tmp/bad_disk.sh"
  has "bad '# lab-disk: lots' (want a size like 256M or 2G)"
  printf '# lab-memory: 99999\ntrue\n' > "$tmp/big.sh"
  expect_rc 2 "$LAB/run" "$tmp/big.sh"
  has "'# lab-memory: 99999' is outside 128..2048 MiB"
  printf '# lab-timeout: soon\ntrue\n' > "$tmp/bad_timeout.sh"
  expect_rc 2 "$LAB/run" "$tmp/bad_timeout.sh"
  has "bad '# lab-timeout: soon' (want seconds)"
  expect_rc 2 "$LAB/run" --deb "$tmp/none.deb" "$LAB/scenarios/debian_kernel.sh"
  has "no .deb at '$tmp/none.deb'"
  ;;
archive_unreachable)
  export SPARETIME_VM_CACHE=$tmp/cache
  # A build killed earlier left its temporary directory behind.
  mkdir -p "$tmp/cache/images/.build-0123456789abcdef-1/root"
  port=$(free_port)
  export SPARETIME_VM_MIRROR=http://127.0.0.1:$port/debian
  expect_rc 1 "$LAB/build-image"
  [ "$(grep -c . "$tmp/out")" -ge 1 ] || fail "no output"
  has "cannot reach the Debian archive at http://127.0.0.1:$port/debian"
  has "no image was cached"
  [ -z "$(ls -A "$tmp/cache/images")" ] || fail "images/ is not empty: $(ls -A "$tmp/cache/images")"
  # An archive that answers but is broken: debootstrap fails half-way.
  mkdir -p "$tmp/mirror/debian/dists/bookworm"
  echo "not a signed release file" > "$tmp/mirror/debian/dists/bookworm/InRelease"
  port=$(free_port)
  python3 -m http.server --bind 127.0.0.1 --directory "$tmp/mirror" "$port" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  export SPARETIME_VM_MIRROR=http://127.0.0.1:$port/debian
  expect_rc 1 "$LAB/build-image"
  has "debootstrap of bookworm from http://127.0.0.1:$port/debian failed"
  has "no image was cached"
  [ -z "$(ls -A "$tmp/cache/images")" ] || fail "images/ is not empty: $(ls -A "$tmp/cache/images")"
  expect_rc 1 "$LAB/build-image" --lookup
  has "no cached image for key"
  ;;
guest_hangs)
  export SPARETIME_VM_TIMEOUT=30 SPARETIME_VM_WORK=$tmp
  expect_rc 3 "$LAB/run" "$LAB/scenarios/debian_kernel.sh"
  has "guest hung: debian_kernel killed after 30 s"
  has "last 40 lines of the guest's console"
  dir=$(sed -n 's/^vm-lab: run directory kept: //p' "$tmp/out")
  [ -f "$dir/console.log" ] || fail "the kept run directory '$dir' has no console.log"
  # The tail printed is the console's (on a loaded host the kernel may not
  # have printed anything within the bound yet).
  if [ -s "$dir/console.log" ]; then
    tail -n 40 "$dir/console.log" | tr -d '\r' | sed '$a\' > "$tmp/want"
    sed -n '/^--- last 40 lines of the guest/,/^---$/p' "$tmp/out" | sed '1d;$d' > "$tmp/got"
    cmp "$tmp/want" "$tmp/got" || fail "the console tail shown differs from $dir/console.log"
  else
    has "(the console is empty)"
  fi
  ;;
scenario_fails)
  export SPARETIME_VM_WORK=$tmp
  expect_rc 1 "$LAB/run" "$LAB/selftest/fails.sh"
  has "lab-selftest: this scenario fails on purpose"
  count "lab-selftest: this scenario fails on purpose" 1
  has "vm-lab: FAILED scenario fails: exit status 3; boot "
  has "--- guest journal of fails"
  has "a line only the journal has"
  dir=$(sed -n 's/^vm-lab: run directory kept: //p' "$tmp/out")
  [ -s "$dir/out/journal.txt" ] || fail "the kept run directory '$dir' has no journal.txt"
  ;;
*) echo "usage: lab_test.sh no_qemu|bad_scenario|archive_unreachable|guest_hangs|scenario_fails" >&2; exit 2 ;;
esac
echo "PASS: $1"
