/* Four worker threads, each hashing into its own TLS state and its own slice
 * of a shared buffer, for argv[2] iterations; the main thread waits in
 * pthread_join (clear_child_tid futexes). The final report (argv[1]) is the
 * same for every run, interrupted by a checkpoint + restore or not:
 *   thread I hash=H count=N name=worker-I tid-same=1 mask-ok=1 altstack-ok=1
 *   shared=H sum=S robust=EOWNERDEAD
 * Per-thread state it checks at the end: its TID, its name, its signal mask
 * (thread I blocks SIGRTMIN+I only), thread 0's sigaltstack, and thread 3's
 * robust list (it exits holding a robust mutex: main must get EOWNERDEAD).
 * "ready" is written once every thread runs. */
#include <pthread.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "mig_common.h"

#define THREADS 4
#define SLICE 4096

static uint64_t shared[THREADS][SLICE];
static uint64_t sum;
static pthread_mutex_t sum_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t robust;
static pthread_barrier_t started;
static unsigned long iterations;
static __thread uint64_t tls_hash = 1469598103934665603ull;
static __thread unsigned long tls_count;
static char altstack[65536];

struct result {
  uint64_t hash;
  unsigned long count;
  char name[16];
  int tid_same, mask_ok, altstack_ok;
};
static struct result results[THREADS];

static void* worker(void* arg) {
  const long i = (long)arg;
  char name[16];
  snprintf(name, sizeof name, "worker-%ld", i);
  pthread_setname_np(pthread_self(), name);
  const pid_t tid = (pid_t)syscall(SYS_gettid);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGRTMIN + (int)i);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  if (i == 0) {
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
  }
  if (i == 3) pthread_mutex_lock(&robust);  /* never unlocked: the robust list must say so */
  pthread_barrier_wait(&started);
  for (unsigned long k = 0; k < iterations; ++k) {
    tls_hash = (tls_hash ^ (k * (uint64_t)(i + 1))) * 1099511628211ull;
    shared[i][k % SLICE] += tls_hash;
    ++tls_count;
    if (k % 100000 == 0) {
      pthread_mutex_lock(&sum_lock);
      sum += tls_hash & 0xffff;
      pthread_mutex_unlock(&sum_lock);
    }
    if (k % 1000000 == 0) mig_sleep_ms(1);
  }
  struct result* r = &results[i];
  r->hash = tls_hash;
  r->count = tls_count;
  prctl(PR_GET_NAME, r->name);
  r->tid_same = (pid_t)syscall(SYS_gettid) == tid;
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  r->mask_ok = 1;
  for (int t = 0; t < THREADS; ++t)
    if (sigismember(&now, SIGRTMIN + t) != (t == i)) r->mask_ok = 0;
  stack_t ss;
  sigaltstack(NULL, &ss);
  r->altstack_ok = i == 0 ? ss.ss_sp == altstack && ss.ss_size == sizeof altstack : (ss.ss_flags & SS_DISABLE) != 0;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  int out = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out < 0) return 2;
  iterations = strtoul(argv[2], NULL, 10);
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&robust, &attr);
  pthread_barrier_init(&started, NULL, THREADS + 1);
  pthread_t threads[THREADS];
  for (long i = 0; i < THREADS; ++i)
    if (pthread_create(&threads[i], NULL, worker, (void*)i) != 0) return 2;
  pthread_barrier_wait(&started);
  mig_line(out, "ready");
  for (int i = 0; i < THREADS; ++i) pthread_join(threads[i], NULL);
  char line[256];
  for (int i = 0; i < THREADS; ++i) {
    const struct result* r = &results[i];
    snprintf(line, sizeof line, "thread %d hash=%016llx count=%lu name=%s tid-same=%d mask-ok=%d altstack-ok=%d", i,
             (unsigned long long)r->hash, r->count, r->name, r->tid_same, r->mask_ok, r->altstack_ok);
    mig_line(out, line);
  }
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < THREADS; ++i)
    for (int k = 0; k < SLICE; ++k) h = (h ^ shared[i][k]) * 1099511628211ull;
  const int lock = pthread_mutex_lock(&robust);
  snprintf(line, sizeof line, "shared=%016llx sum=%llu robust=%s", (unsigned long long)h, (unsigned long long)sum,
           lock == EOWNERDEAD ? "EOWNERDEAD" : lock == 0 ? "locked" : "error");
  mig_line(out, line);
  return 0;
}
