// ProgressReporter: counts bytes done from many threads and calls the
// caller's ProgressFn at most every 200 ms (and once at the end).
#ifndef SPARETIME_IMAGING_PROGRESS_REPORTER_H_
#define SPARETIME_IMAGING_PROGRESS_REPORTER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "sparetime/imaging/imager.h"

namespace sparetime {

class ProgressReporter {
 public:
  ProgressReporter(const ProgressFn& fn, uint64_t total) : fn_(fn), total_(total) {}

  void Add(uint64_t bytes) {
    uint64_t done = done_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (!fn_) return;
    auto now = std::chrono::steady_clock::now();
    std::unique_lock lock(mu_, std::try_to_lock);
    if (!lock.owns_lock() || now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    fn_({done, total_});
  }

  void Finish() {
    if (fn_) fn_({done_.load(), total_});
  }

 private:
  const ProgressFn& fn_;
  const uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PROGRESS_REPORTER_H_
