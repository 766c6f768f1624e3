/* The restore stub: the program a restored process starts as.
 *
 * The helper (restore.cc) creates a child with clone3(set_tid = old PID),
 * which calls PTRACE_TRACEME and execs this file. The kernel stops it with
 * SIGTRAP before its first instruction; from then on the helper drives it
 * with injected syscalls and finally replaces every mapping and register, so
 * none of this code runs during a restore except the entry instruction.
 *
 * Invariants the helper relies on:
 *   - the entry point starts with a `syscall` instruction (0f 05): the first
 *     gadget the helper uses (it stops at syscall-exit, so what follows is
 *     never reached under the helper);
 *   - static, no libc, no TLS, no rseq registration, no dynamic loader: the
 *     only mappings are this ELF, its stack, and the vDSO.
 * Run by hand (no tracer), the entry syscall is read(0, NULL, 0) (the kernel
 * starts processes with zeroed registers), then it says what it is and exits.
 */

#define SYS_WRITE 1
#define SYS_EXIT_GROUP 231

static long raw_syscall3(long nr, long a1, long a2, long a3) {
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
                   : "rcx", "r11", "memory");
  return ret;
}

static void raw_write(int fd, const char* s) {
  long n = 0;
  while (s[n]) n++;
  raw_syscall3(SYS_WRITE, fd, (long)s, n);
}

__attribute__((noreturn, used)) void stub_main(void) {
  raw_write(2, "sparetime-restore-stub: started without the sparetime restore helper; exiting\n");
  for (;;) raw_syscall3(SYS_EXIT_GROUP, 2, 0, 0);
}

__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "  syscall\n"           /* gadget: the helper's first injected syscall */
    "  and $-16, %rsp\n"
    "  call stub_main\n"
    "  hlt\n");
