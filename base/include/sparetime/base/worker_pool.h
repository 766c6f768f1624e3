// WorkerPool: a fixed maximum of threads that run submitted tasks — the one
// place a component that talks to many peers (or serves many requests) gets
// its parallelism, instead of a raw thread per peer.
//
// Invariants:
//  - at most max_threads() threads ever exist for a pool; they are started
//    lazily (one per queued task, up to the maximum) and live until the
//    pool is destroyed;
//  - at most max_threads() tasks run at once; the rest wait in FIFO order;
//  - RunAll returns only after every task it was given has returned;
//  - the destructor runs every task still queued, then joins the threads.
// A task must not wait (RunAll) on the pool that runs it: with every thread
// waiting, nothing would run the inner tasks.
//
// Thread safety: all methods are safe for concurrent use.
#ifndef SPARETIME_BASE_WORKER_POOL_H_
#define SPARETIME_BASE_WORKER_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "sparetime/base/mutex.h"

namespace sparetime {

class WorkerPool {
 public:
  // `max_threads` 0 is taken as 1.
  explicit WorkerPool(size_t max_threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; it runs on a pool thread.
  void Submit(std::function<void()> task) EXCLUDES(mu_);
  // Runs every task on the pool and waits until all of them have returned.
  void RunAll(std::vector<std::function<void()>> tasks) EXCLUDES(mu_);

  size_t max_threads() const { return max_threads_; }
  // Threads started so far (never more than max_threads()).
  size_t threads_started() const EXCLUDES(mu_);

 private:
  void Loop() EXCLUDES(mu_);

  const size_t max_threads_;
  mutable Mutex mu_;
  std::condition_variable_any work_cv_;
  std::deque<std::function<void()>> queue_ GUARDED_BY(mu_);
  size_t idle_ GUARDED_BY(mu_) = 0;  // threads waiting for work
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ GUARDED_BY(mu_);
};

}  // namespace sparetime

#endif  // SPARETIME_BASE_WORKER_POOL_H_
