// TokenBucket: refill on demand from elapsed monotonic time, wait in
// bounded slices outside the lock.
#include "sparetime/base/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace sparetime {

TokenBucket::TokenBucket(uint64_t bytes_per_second, uint64_t burst_bytes, const Clock& clock)
    : clock_(clock),
      burst_bytes_(burst_bytes),
      rate_(bytes_per_second),
      refilled_at_(clock.MonoNow()) {
  MutexLock lock(mu_);
  tokens_ = capacity();
}

double TokenBucket::capacity() const {
  return static_cast<double>(burst_bytes_ != 0 ? burst_bytes_ : rate_);
}

void TokenBucket::Refill(std::chrono::steady_clock::time_point now) {
  if (now > refilled_at_) {
    double seconds = std::chrono::duration<double>(now - refilled_at_).count();
    tokens_ = std::min(capacity(), tokens_ + seconds * static_cast<double>(rate_));
  }
  refilled_at_ = std::max(refilled_at_, now);
}

std::chrono::nanoseconds TokenBucket::TryTake(uint64_t bytes) {
  MutexLock lock(mu_);
  if (rate_ == 0) return std::chrono::nanoseconds(0);
  Refill(clock_.MonoNow());
  double need = std::min(static_cast<double>(bytes), capacity());
  if (tokens_ >= need) {
    tokens_ -= static_cast<double>(bytes);
    return std::chrono::nanoseconds(0);
  }
  double seconds = (need - tokens_) / static_cast<double>(rate_);
  // At least 1 us so a rounding remainder never becomes a busy loop.
  auto wait = std::chrono::nanoseconds(static_cast<int64_t>(std::ceil(seconds * 1e9)));
  return std::clamp<std::chrono::nanoseconds>(wait, std::chrono::microseconds(1), kMaxSlice);
}

void TokenBucket::Acquire(uint64_t bytes) {
  for (;;) {
    std::chrono::nanoseconds wait = TryTake(bytes);
    if (wait.count() == 0) return;
    clock_.SleepFor(wait);
  }
}

bool TokenBucket::Acquire(uint64_t bytes, std::stop_token stop) {
  for (;;) {
    if (stop.stop_requested()) return false;
    std::chrono::nanoseconds wait = TryTake(bytes);
    if (wait.count() == 0) return true;
    clock_.SleepFor(wait);
  }
}

void TokenBucket::set_rate(uint64_t bytes_per_second) {
  MutexLock lock(mu_);
  Refill(clock_.MonoNow());
  rate_ = bytes_per_second;
  tokens_ = std::min(tokens_, capacity());
}

uint64_t TokenBucket::rate() const {
  MutexLock lock(mu_);
  return rate_;
}

}  // namespace sparetime
