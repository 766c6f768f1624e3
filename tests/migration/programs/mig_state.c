/* State probe (zdtm maps00/mprotect00/sigaltstack/rseq00/fpu/cwd/umask/
 * rlimits/pid00 in one): sets up the state below, then loops checking it
 * and logging "iter N ok" or "iter N bad:<what>" to argv[1]. SIGUSR2 runs a
 * handler that must be on the altstack; SIGTERM logs "done ok" or
 * "done bad:<what>" and exits 0.
 * argv: OUT DIR PRIVATE_FILE SHARED_FILE (files of at least 3 pages).
 * The AVX check keeps a value in ymm15 across a 2-3 ms spin loop, where a
 * checkpoint often lands, so a lost xstate shows up as "bad:ymm". */
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "mig_common.h"

#define PAGE 4096
extern ptrdiff_t __rseq_offset;
extern unsigned int __rseq_size;

static char* anon;      /* 4 pages: RW, RO, NONE, RWX */
static char* priv;      /* private file mapping, page 1 modified */
static char* shanon;    /* shared anonymous */
static char* shfile;    /* shared file mapping, page 0 written */
static char* altstack;
static pid_t my_pid;
static volatile sig_atomic_t term, usr2_seen, usr2_on_altstack;

static void on_term(int sig) { (void)sig; term = 1; }
static void on_usr2(int sig) {
  (void)sig;
  char here;
  usr2_seen = 1;
  usr2_on_altstack = &here >= altstack && &here < altstack + 65536;
}

static int avx_spin_check(uint64_t seed) {
  if (!__builtin_cpu_supports("avx")) return 1;
  uint64_t in[4] = {seed, seed * 3, seed * 5, seed * 7}, out[4] = {0, 0, 0, 0};
  __asm__ volatile(
      "vmovdqu (%[in]), %%ymm15\n\t"
      "mov $3000000, %%rcx\n\t"
      "1: dec %%rcx\n\t"
      "jnz 1b\n\t"
      "vmovdqu %%ymm15, (%[out])\n\t"
      :
      : [in] "r"(in), [out] "r"(out)
      : "rcx", "xmm15", "memory");
  return memcmp(in, out, sizeof in) == 0;
}

static const char* check(uint64_t seed) {
  if (getpid() != my_pid) return "pid";
  if (anon[0] != 'a' || anon[PAGE] != 'b' || anon[3 * PAGE] != 'd') return "anon";
  if (priv[0] == 'X' || priv[PAGE] != 'X' || priv[2 * PAGE] == 'X') return "private-file";
  if (shanon[100] != 's') return "shared-anon";
  if (shfile[0] != 'W') return "shared-file";
  if (umask(027) != 027) return "umask";
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != 200 || rl.rlim_max != 300) return "rlimit";
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd) || strstr(cwd, "/workdir") == NULL) return "cwd";
  stack_t ss;
  if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != altstack || ss.ss_size != 65536) return "altstack";
  if (sched_getcpu() < 0) return "getcpu";
  if (!avx_spin_check(seed)) return "ymm";
  return NULL;
}

static const char* final_check(void) {
  /* PROT_NONE page: make it readable to check its contents survived. */
  if (mprotect(anon + 2 * PAGE, PAGE, PROT_READ) != 0 || anon[2 * PAGE] != 'c') return "prot-none-contents";
  /* rseq must still be registered at glibc's area: re-registering is EBUSY. */
  void* area = (char*)__builtin_thread_pointer() + __rseq_offset;
  if (__rseq_size && (syscall(SYS_rseq, area, 32, 0, 0x53053053) != -1 || errno != EBUSY)) return "rseq";
  if (!usr2_seen || !usr2_on_altstack) return "sigaltstack-handler";
  return NULL;
}

static char* map_file(const char* path, int flags, int prot) {
  int fd = open(path, prot & PROT_WRITE && flags == MAP_SHARED ? O_RDWR : O_RDONLY);
  if (fd < 0) exit(2);
  char* p = mmap(NULL, 3 * PAGE, prot, flags, fd, 0);
  close(fd);
  if (p == MAP_FAILED) exit(2);
  return p;
}

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || chdir(argv[2]) != 0) return 2;
  my_pid = getpid();
  umask(027);
  struct rlimit rl = {200, 300};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
  anon = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (anon == MAP_FAILED) return 2;
  anon[0] = 'a', anon[PAGE] = 'b', anon[2 * PAGE] = 'c', anon[3 * PAGE] = 'd';
  if (mprotect(anon + PAGE, PAGE, PROT_READ) || mprotect(anon + 2 * PAGE, PAGE, PROT_NONE) ||
      mprotect(anon + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC))
    return 2;
  priv = map_file(argv[3], MAP_PRIVATE, PROT_READ | PROT_WRITE);
  priv[PAGE] = 'X';
  shfile = map_file(argv[4], MAP_SHARED, PROT_READ | PROT_WRITE);
  shfile[0] = 'W';
  shanon = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shanon == MAP_FAILED) return 2;
  shanon[100] = 's';
  altstack = malloc(65536);
  stack_t ss = {.ss_sp = altstack, .ss_flags = 0, .ss_size = 65536};
  if (!altstack || sigaltstack(&ss, NULL) != 0) return 2;
  mig_on(SIGUSR2, on_usr2, SA_RESTART | SA_ONSTACK);
  mig_on(SIGTERM, on_term, SA_RESTART);
  char buf[128];
  for (unsigned long n = 0;; ++n) {
    const char* bad = check(n + 1);
    snprintf(buf, sizeof buf, "iter %lu %s%s", n, bad ? "bad:" : "ok", bad ? bad : "");
    mig_line(fd, buf);
    if (term) {
      bad = bad ? bad : final_check();
      snprintf(buf, sizeof buf, "done %s%s", bad ? "bad:" : "ok", bad ? bad : "");
      mig_line(fd, buf);
      return 0;
    }
    mig_sleep_ms(1);
  }
}
