// FakeClock: a Clock that moves only when told to. SleepFor advances it, so
// code that waits (token buckets, schedulers) runs hours in microseconds.
//
// Thread safety: all methods may be called from any thread; the two times
// are guarded by one Mutex (clang's -Wthread-safety checks it).
#ifndef SPARETIME_TESTS_FAKE_CLOCK_H_
#define SPARETIME_TESTS_FAKE_CLOCK_H_

#include <chrono>

#include "sparetime/base/clock.h"
#include "sparetime/base/mutex.h"

namespace sparetime::testing {

class FakeClock final : public Clock {
 public:
  // Monday 3 June 2024, 12:00 UTC unless told otherwise.
  explicit FakeClock(std::chrono::system_clock::time_point wall =
                         std::chrono::system_clock::from_time_t(1717416000))
      : wall_(wall) {}
  std::chrono::system_clock::time_point WallNow() const override EXCLUDES(mu_) {
    MutexLock l(mu_);
    return wall_;
  }
  std::chrono::steady_clock::time_point MonoNow() const override EXCLUDES(mu_) {
    MutexLock l(mu_);
    return mono_;
  }
  void SleepFor(std::chrono::nanoseconds d) const override EXCLUDES(mu_) {
    const_cast<FakeClock*>(this)->Advance(d);
  }
  void Advance(std::chrono::nanoseconds d) EXCLUDES(mu_) {
    MutexLock l(mu_);
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    mono_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
  }
  // Jumps the wall clock only (as a date change would); monotonic time goes on.
  void SetWall(std::chrono::system_clock::time_point wall) EXCLUDES(mu_) {
    MutexLock l(mu_);
    wall_ = wall;
  }

 private:
  mutable Mutex mu_;
  std::chrono::system_clock::time_point wall_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point mono_ GUARDED_BY(mu_){std::chrono::hours(1000)};
};

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_FAKE_CLOCK_H_
