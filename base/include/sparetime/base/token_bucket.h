// TokenBucket: a byte-rate limiter shared by the threads that move bytes
// (device reads of a backup job, peer uploads).
//
// The bucket holds up to `burst` tokens (bytes) and refills at `rate` bytes
// per second of Clock::MonoNow time. Acquire(n) waits until the bucket holds
// min(n, burst) tokens and then takes n, so a request larger than the burst
// is allowed through and leaves a debt that later requests wait out: the
// long-run rate is `rate` whatever the request sizes. A rate of 0 means
// unlimited (Acquire never waits); set_rate takes effect for waiters within
// one wait slice (kMaxSlice). Waiting is done with Clock::SleepFor in slices,
// so tests run with a fake clock and a stop request is seen within a slice.
//
// Thread safety: all methods may be called from any thread.
#ifndef SPARETIME_BASE_TOKEN_BUCKET_H_
#define SPARETIME_BASE_TOKEN_BUCKET_H_

#include <chrono>
#include <cstdint>
#include <stop_token>

#include "sparetime/base/clock.h"
#include "sparetime/base/mutex.h"

namespace sparetime {

class TokenBucket {
 public:
  // Longest single sleep while waiting; bounds how late a stop request or a
  // rate change is noticed.
  static constexpr std::chrono::milliseconds kMaxSlice{100};

  // burst_bytes 0: one second's worth of the rate. The bucket starts full.
  TokenBucket(uint64_t bytes_per_second, uint64_t burst_bytes, const Clock& clock);
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Blocks until `bytes` may go.
  void Acquire(uint64_t bytes) EXCLUDES(mu_);
  // Like Acquire, but returns false (taking nothing) once `stop` is requested.
  bool Acquire(uint64_t bytes, std::stop_token stop) EXCLUDES(mu_);

  // 0: unlimited. Keeps the current tokens (capped at the new burst).
  void set_rate(uint64_t bytes_per_second) EXCLUDES(mu_);
  uint64_t rate() const EXCLUDES(mu_);

 private:
  // Takes the tokens and returns 0, or returns how long to wait before trying again.
  std::chrono::nanoseconds TryTake(uint64_t bytes) EXCLUDES(mu_);
  void Refill(std::chrono::steady_clock::time_point now) REQUIRES(mu_);
  double capacity() const REQUIRES(mu_);

  const Clock& clock_;
  const uint64_t burst_bytes_;
  mutable Mutex mu_;
  uint64_t rate_ GUARDED_BY(mu_);
  double tokens_ GUARDED_BY(mu_);  // negative = debt from an oversized request
  std::chrono::steady_clock::time_point refilled_at_ GUARDED_BY(mu_);
};

}  // namespace sparetime

#endif  // SPARETIME_BASE_TOKEN_BUCKET_H_
