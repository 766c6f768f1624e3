/* Counter: writes "N" lines (N = 0, 1, 2...) to argv[1] (opened without
 * O_APPEND, so the file offset must survive a migration), sleeping 2 ms in
 * nanosleep between lines; keeps a 4 MiB heap pattern. SIGUSR1 adds a line
 * "usr1 N"; SIGTERM ends with "done N heap-ok|heap-bad" and exit 0. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>

#include "mig_common.h"

static volatile sig_atomic_t usr1, term;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }
static void on_term(int sig) { (void)sig; term = 1; }

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 2;
  mig_on(SIGUSR1, on_usr1, SA_RESTART);
  mig_on(SIGTERM, on_term, SA_RESTART);
  const size_t words = (4u << 20) / sizeof(uint64_t);
  uint64_t* heap = malloc(words * sizeof(uint64_t));
  if (!heap) return 2;
  for (size_t i = 0; i < words; ++i) heap[i] = i * 0x9e3779b97f4a7c15ull;
  char buf[128];
  for (unsigned long n = 0;; ++n) {
    snprintf(buf, sizeof buf, "%lu", n);
    mig_line(fd, buf);
    if (usr1) {
      usr1 = 0;
      snprintf(buf, sizeof buf, "usr1 %lu", n);
      mig_line(fd, buf);
    }
    if (term) {
      int ok = 1;
      for (size_t i = 0; i < words; ++i) ok &= heap[i] == i * 0x9e3779b97f4a7c15ull;
      snprintf(buf, sizeof buf, "done %lu %s", n, ok ? "heap-ok" : "heap-bad");
      mig_line(fd, buf);
      return 0;
    }
    mig_sleep_ms(2);
  }
}
