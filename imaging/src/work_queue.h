// BoundedQueue: a closable multi-producer multi-consumer queue with a fixed
// capacity, used by the imager and restorer pipelines to bound memory.
// Push blocks while full; Pop blocks while empty; after Close() pushes fail
// and pops drain what is left, then return nullopt.
#ifndef SPARETIME_IMAGING_WORK_QUEUE_H_
#define SPARETIME_IMAGING_WORK_QUEUE_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "sparetime/base/status.h"

namespace sparetime {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  // False when the queue was closed (the item is dropped).
  bool Push(T item) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  std::optional<T> Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> items_;
  bool closed_ = false;
};

// Keeps the first error reported by any thread.
class FirstError {
 public:
  void Set(const Status& st) {
    if (st.ok()) return;
    std::lock_guard lock(mu_);
    if (status_.ok()) status_ = st;
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  Status Get() const {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  mutable std::mutex mu_;
  Status status_;
  std::atomic<bool> failed_{false};
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_WORK_QUEUE_H_
