/* Shared helpers of the migration probe programs: appending lines to the
 * output file (argv[1]) with raw write(2), and async-signal-safe flags.
 * Every program reports through that file only (its stdio is /dev/null), so
 * it has no fd the checkpoint would refuse. */
#ifndef MIG_COMMON_H_
#define MIG_COMMON_H_

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline void mig_write_all(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(3);
    buf += w;
    n -= (size_t)w;
  }
}

/* Appends "text\n" at the fd's current offset. */
static inline void mig_line(int fd, const char* text) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "%s\n", text);
  mig_write_all(fd, buf, (size_t)n);
}

static inline void mig_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static inline void mig_on(int sig, void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

#endif
