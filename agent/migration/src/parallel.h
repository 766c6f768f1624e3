// ParallelFor: runs fn(0..n-1) on up to `threads` threads (the caller is one
// of them) and returns the first error. Used by the image writer and loader
// to digest, seal and open chunks on every core. Once an item fails, items
// not yet started are skipped. Bounded: the call returns when every started
// item has finished. A thread that cannot be started leaves its share to the
// others (at least the caller).
#ifndef SPARETIME_MIGRATION_PARALLEL_H_
#define SPARETIME_MIGRATION_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <system_error>
#include <thread>
#include <vector>

#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"

namespace sparetime::migration {

// All cores of this machine (at least 1).
inline unsigned DefaultThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

inline Status ParallelFor(size_t n, unsigned threads, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  Mutex mu;
  Status first;  // guarded by mu (a local: the analysis checks members only)
  auto work = [&] {
    for (size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < n;) {
      Status s = fn(i);
      if (s.ok()) continue;
      MutexLock l(mu);
      if (first.ok()) first = std::move(s);
      failed.store(true, std::memory_order_relaxed);
    }
  };
  {
    std::vector<std::jthread> helpers;
    const size_t extra = std::min<size_t>(threads, n) > 1 ? std::min<size_t>(threads, n) - 1 : 0;
    for (size_t t = 0; t < extra; ++t) {
      try {
        helpers.emplace_back(work);
      } catch (const std::system_error&) {
        break;  // no more threads: the others (at least the caller) do the rest
      }
    }
    work();
  }
  return first;
}

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_PARALLEL_H_
