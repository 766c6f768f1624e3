/* Timer + blocked read: an ITIMER_REAL fires every 5 ms; its SIGALRM handler
 * (SA_RESTART) writes a byte into a pipe the process reads from, so the main
 * loop spends its time blocked in read(2) (a checkpoint catches it there,
 * with -ERESTARTSYS). Logs "tick N" to argv[1] (O_APPEND) per byte;
 * SIGUSR1 logs "usr1"; SIGTERM logs "done N" and exits 0. */
#include <fcntl.h>
#include <sys/time.h>

#include "mig_common.h"

static int pipe_fds[2];
static volatile sig_atomic_t usr1, term;
static void on_alarm(int sig) {
  (void)sig;
  char c = 't';
  if (write(pipe_fds[1], &c, 1) < 0) _exit(4);
}
static void on_usr1(int sig) { (void)sig; usr1 = 1; }
static void on_term(int sig) { (void)sig; term = 1; }

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0) return 2;
  mig_on(SIGALRM, on_alarm, SA_RESTART);
  mig_on(SIGUSR1, on_usr1, SA_RESTART);
  mig_on(SIGTERM, on_term, SA_RESTART);
  struct itimerval it = {{0, 5000}, {0, 5000}};
  if (setitimer(ITIMER_REAL, &it, NULL) != 0) return 2;
  char buf[64];
  for (unsigned long n = 0;; ++n) {
    char c;
    ssize_t r = read(pipe_fds[0], &c, 1);
    if (r != 1) {
      snprintf(buf, sizeof buf, "read-error %ld %d", (long)r, errno);
      mig_line(fd, buf);
      return 1;
    }
    snprintf(buf, sizeof buf, "tick %lu", n);
    mig_line(fd, buf);
    if (usr1) {
      usr1 = 0;
      mig_line(fd, "usr1");
    }
    if (term) {
      snprintf(buf, sizeof buf, "done %lu", n);
      mig_line(fd, buf);
      return 0;
    }
  }
}
