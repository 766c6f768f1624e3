// ProgressReporter: counts bytes done from many threads and calls the
// caller's ProgressFn at most every 200 ms (and once at the end).
#ifndef SPARETIME_IMAGING_PROGRESS_REPORTER_H_
#define SPARETIME_IMAGING_PROGRESS_REPORTER_H_

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sparetime/base/mutex.h"
#include "sparetime/imaging/imager.h"

namespace sparetime {

class ProgressReporter {
 public:
  ProgressReporter(const ProgressFn& fn, uint64_t total) : fn_(fn), total_(total) {}

  void Add(uint64_t bytes) EXCLUDES(mu_) {
    uint64_t done = done_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (!fn_) return;
    auto now = std::chrono::steady_clock::now();
    if (!mu_.try_lock()) return;  // another thread is reporting right now
    if (now - last_ >= std::chrono::milliseconds(200)) {
      last_ = now;
      fn_({done, total_});  // under mu_: calls never overlap
    }
    mu_.unlock();
  }

  void Finish() {
    if (fn_) fn_({done_.load(), total_});
  }

 private:
  const ProgressFn& fn_;
  const uint64_t total_;
  std::atomic<uint64_t> done_{0};
  Mutex mu_;
  std::chrono::steady_clock::time_point last_ GUARDED_BY(mu_) = {};
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PROGRESS_REPORTER_H_
