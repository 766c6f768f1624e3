// BoundedQueue: a closable multi-producer multi-consumer queue with a fixed
// capacity, used by the imager and restorer pipelines to bound memory.
// Push blocks while full; Pop blocks while empty; after Close() pushes fail
// and pops drain what is left, then return nullopt.
#ifndef SPARETIME_IMAGING_WORK_QUEUE_H_
#define SPARETIME_IMAGING_WORK_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"

namespace sparetime {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  // False when the queue was closed (the item is dropped).
  bool Push(T item) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    lock.Wait(not_full_, [&]() REQUIRES(mu_) { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  std::optional<T> Pop() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    lock.Wait(not_empty_, [&]() REQUIRES(mu_) { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  void Close() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  const size_t capacity_;
  Mutex mu_;
  std::condition_variable_any not_empty_, not_full_;
  std::deque<T> items_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
};

// Keeps the first error reported by any thread.
class FirstError {
 public:
  void Set(const Status& st) EXCLUDES(mu_) {
    if (st.ok()) return;
    MutexLock lock(mu_);
    if (status_.ok()) status_ = st;
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  Status Get() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return status_;
  }

 private:
  mutable Mutex mu_;
  Status status_ GUARDED_BY(mu_);
  std::atomic<bool> failed_{false};
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_WORK_QUEUE_H_
