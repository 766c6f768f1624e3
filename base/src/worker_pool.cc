// WorkerPool: a FIFO of tasks served by at most max_threads lazily started
// threads (see worker_pool.h).
#include "sparetime/base/worker_pool.h"

#include <memory>
#include <utility>

namespace sparetime {

WorkerPool::WorkerPool(size_t max_threads) : max_threads_(max_threads == 0 ? 1 : max_threads) {}

WorkerPool::~WorkerPool() {
  std::vector<std::thread> threads;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  work_cv_.notify_all();
  for (std::thread& t : threads) t.join();
}

void WorkerPool::Submit(std::function<void()> task) {
  {
    MutexLock lock(mu_);
    queue_.push_back(std::move(task));
    // A new thread only when no idle one can take it and the bound allows.
    if (idle_ < queue_.size() && threads_.size() < max_threads_) {
      threads_.emplace_back([this] { Loop(); });
    }
  }
  work_cv_.notify_one();
}

void WorkerPool::RunAll(std::vector<std::function<void()>> tasks) {
  struct Group {
    Mutex mu;
    std::condition_variable_any cv;
    size_t left GUARDED_BY(mu) = 0;
  };
  auto group = std::make_shared<Group>();
  {
    MutexLock lock(group->mu);
    group->left = tasks.size();
  }
  for (std::function<void()>& task : tasks) {
    Submit([group, task = std::move(task)] {
      task();
      MutexLock lock(group->mu);
      if (--group->left == 0) group->cv.notify_all();
    });
  }
  MutexLock lock(group->mu);
  lock.Wait(group->cv, [&]() REQUIRES(group->mu) { return group->left == 0; });
}

size_t WorkerPool::threads_started() const {
  MutexLock lock(mu_);
  return threads_.size();
}

void WorkerPool::Loop() {
  while (true) {
    std::function<void()> task;
    {
      MutexLock lock(mu_);
      ++idle_;
      lock.Wait(work_cv_, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;  // stopping, and nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace sparetime
