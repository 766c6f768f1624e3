/* Holds one thing stage 1 must refuse, chosen by argv[2], then logs "ready"
 * and "tick" lines to argv[1] every 5 ms so a test can see it keep running
 * after a refused checkpoint. Modes: threadcreds (a thread with its
 * own gid) child socket eventfd epoll
 * signalfd timerfd inotify pidfd io_uring memfd deleted sysvshm device
 * seccomp halfpipe. */
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>

#include "mig_common.h"

static volatile int thread_ready;

static void* sleeper(void* arg) {
  (void)arg;
  /* The raw call changes this thread's credentials only (glibc's setresgid
   * would change every thread's). */
  syscall(SYS_setresgid, -1, 4321, -1);
  __atomic_store_n(&thread_ready, 1, __ATOMIC_SEQ_CST);
  for (;;) pause();
  return NULL;
}

static int setup(const char* mode, const char* out) {
  if (!strcmp(mode, "threadcreds")) {
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0) return 1;
    while (!__atomic_load_n(&thread_ready, __ATOMIC_SEQ_CST)) mig_sleep_ms(1);
    return 0;
  }
  if (!strcmp(mode, "child")) {
    pid_t c = fork();
    if (c == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  /* never outlive the test's process */
      if (getppid() == 1) _exit(0);
      for (;;) pause();
    }
    return c < 0;
  }
  if (!strcmp(mode, "socket")) return socket(AF_UNIX, SOCK_STREAM, 0) < 0;
  if (!strcmp(mode, "eventfd")) return eventfd(0, 0) < 0;
  if (!strcmp(mode, "epoll")) return epoll_create1(0) < 0;
  if (!strcmp(mode, "signalfd")) {
    sigset_t s;
    sigemptyset(&s);
    return signalfd(-1, &s, 0) < 0;
  }
  if (!strcmp(mode, "timerfd")) return timerfd_create(CLOCK_MONOTONIC, 0) < 0;
  if (!strcmp(mode, "inotify")) return inotify_init1(0) < 0;
  if (!strcmp(mode, "pidfd")) return syscall(SYS_pidfd_open, getpid(), 0) < 0;
  if (!strcmp(mode, "io_uring")) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    return syscall(SYS_io_uring_setup, 4, &p) < 0;
  }
  if (!strcmp(mode, "memfd")) {
    int fd = memfd_create("mig", 0);
    return fd < 0 || ftruncate(fd, 4096) != 0;
  }
  if (!strcmp(mode, "deleted")) {
    char path[4096];
    snprintf(path, sizeof path, "%s.deleted", out);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    return fd < 0 || unlink(path) != 0;
  }
  if (!strcmp(mode, "sysvshm")) {
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    if (id < 0) return 1;
    void* p = shmat(id, NULL, 0);
    shmctl(id, IPC_RMID, NULL);
    return p == (void*)-1;
  }
  if (!strcmp(mode, "device")) return open("/dev/ptmx", O_RDWR | O_NOCTTY) < 0;
  if (!strcmp(mode, "seccomp")) {
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {1, &allow};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
  }
  if (!strcmp(mode, "halfpipe")) {
    int p[2];
    if (pipe(p) != 0) return 1;
    return close(p[1]);
  }
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || setup(argv[2], argv[1]) != 0) return 2;
  mig_line(fd, "ready");
  for (;;) {
    mig_line(fd, "tick");
    mig_sleep_ms(5);
  }
}
