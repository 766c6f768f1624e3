/* Pipe with buffered data: the process keeps about 3000 bytes queued in its
 * own pipe (writes 100, reads 100 per iteration), all bytes following the
 * sequence k % 251, so lost, duplicated or reordered pipe contents show up.
 * Logs "iter N" to argv[1] (O_APPEND); SIGTERM logs "done N ok|bad". */
#include <fcntl.h>

#include "mig_common.h"

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  int p[2];
  if (fd < 0 || pipe2(p, O_CLOEXEC) != 0) return 2;
  mig_on(SIGTERM, on_term, SA_RESTART);
  unsigned long written = 0, readn = 0;
  int ok = 1;
  unsigned char chunk[100];
  for (int i = 0; i < 30; ++i) { /* prefill */
    for (int k = 0; k < 100; ++k) chunk[k] = (unsigned char)((written + (unsigned long)k) % 251);
    mig_write_all(p[1], (const char*)chunk, sizeof chunk);
    written += sizeof chunk;
  }
  char buf[64];
  for (unsigned long n = 0;; ++n) {
    for (int k = 0; k < 100; ++k) chunk[k] = (unsigned char)((written + (unsigned long)k) % 251);
    mig_write_all(p[1], (const char*)chunk, sizeof chunk);
    written += sizeof chunk;
    size_t got = 0;
    while (got < sizeof chunk) {
      ssize_t r = read(p[0], chunk + got, sizeof chunk - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return 3;
      got += (size_t)r;
    }
    for (int k = 0; k < 100; ++k) ok &= chunk[k] == (unsigned char)((readn + (unsigned long)k) % 251);
    readn += sizeof chunk;
    snprintf(buf, sizeof buf, "iter %lu", n);
    mig_line(fd, buf);
    if (term) {
      snprintf(buf, sizeof buf, "done %lu %s", n, ok ? "ok" : "bad");
      mig_line(fd, buf);
      return 0;
    }
    mig_sleep_ms(2);
  }
}
