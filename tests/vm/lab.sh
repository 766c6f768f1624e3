# shellcheck shell=bash
# Shared helpers of the VM lab (tests/vm/): sourced by build-image, build-deb,
# run and lab_test.sh; never run on its own.
#
# Invariants:
# - Nothing here installs anything on the host or touches the host's kernel:
#   the guest kernel is extracted from Debian's package into the cache.
# - A cached image directory exists only complete: it is built under a
#   temporary name and renamed into place as its last step.
# - Exit code 77 means "skipped" (ctest SKIP_RETURN_CODE) and is used only
#   when a host tool is missing, with the Debian package that provides it.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SUITE=bookworm
LAB_CACHE=${SPARETIME_VM_CACHE:-/var/cache/sparetime-vm}
LAB_SKIP=77

lab_say() { printf 'vm-lab: %s\n' "$*" >&2; }
lab_die() { printf 'vm-lab: error: %s\n' "$*" >&2; exit "${LAB_DIE_CODE:-1}"; }

# lab_need TOOL PACKAGE: skip (exit 77) when TOOL is not on PATH.
lab_need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  printf 'skipped: %s not installed (apt-get install %s, or run scripts/install-deps)\n' "$2" "$2"
  exit "$LAB_SKIP"
}

lab_qemu() { echo "${SPARETIME_VM_QEMU:-qemu-system-x86_64}"; }

# The Debian archive apt already uses for bookworm main (override:
# SPARETIME_VM_MIRROR).
lab_mirror() {
  if [ -n "${SPARETIME_VM_MIRROR:-}" ]; then echo "$SPARETIME_VM_MIRROR"; return; fi
  local m
  m=$(apt-cache policy 2>/dev/null | awk '$3 == "'$LAB_SUITE'/main" && $4 == "amd64" {print $2; exit}')
  [ -n "$m" ] || lab_die "apt knows no $LAB_SUITE/main archive: run apt-get update, or set SPARETIME_VM_MIRROR=http://deb.debian.org/debian"
  echo "$m"
}

# "PACKAGE VERSION" of the kernel linux-image-amd64 points at (one apt-cache
# call: it is slow on a loaded machine).
lab_kernel_package() {
  local p
  p=$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
      sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -n 1)
  [ -n "$p" ] || lab_die "apt cannot resolve linux-image-amd64: run apt-get update (the lab extracts Debian's kernel from its package)"
  echo "$p"
}

# lab_header FILE KEY: the values of "# lab-KEY: value" lines of a scenario,
# one per line.
lab_header() {
  sed -n "s/^# lab-$2:[[:space:]]*//p" "$1"
}

# The guest's package list: tests/vm/packages plus every scenario's
# "# lab-packages:" lines (under SCENARIO_DIRS), sorted and unique.
lab_packages() {
  local f
  {
    grep -v '^[[:space:]]*\(#\|$\)' "$LAB_DIR/packages" | tr -s ' \t' '\n'
    for f in "$@"; do lab_header "$f" packages | tr -s ' \t,' '\n'; done
  } | sed '/^$/d' | sort -u
}

lab_scenarios() {
  local d
  for d in "$LAB_DIR/scenarios" "$LAB_DIR/selftest"; do ls "$d"/*.sh 2>/dev/null; done
}

# KVM only where it really works: /dev/kvm usable and a hardware KVM module
# (kvm_intel/kvm_amd) loaded. A PVM-only /dev/kvm (kvm_pvm) hangs Debian's
# stock kernel, so it means TCG. SPARETIME_VM_ACCEL=tcg|kvm overrides.
lab_accel() {
  if [ -n "${SPARETIME_VM_ACCEL:-}" ]; then echo "$SPARETIME_VM_ACCEL"; return; fi
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
    echo kvm
  else
    echo tcg
  fi
}
