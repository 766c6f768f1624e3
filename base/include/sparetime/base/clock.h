// Clock: the time seam. Production code asks a Clock for the time and to
// sleep; tests substitute a fake to run hours of schedule in milliseconds.
//
// Thread safety: implementations are safe to call from any thread.
#ifndef SPARETIME_BASE_CLOCK_H_
#define SPARETIME_BASE_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace sparetime {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (for timestamps shown to people and stored in catalogs).
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
  // Monotonic time (for rates, timeouts and durations).
  virtual std::chrono::steady_clock::time_point MonoNow() const = 0;
  virtual void SleepFor(std::chrono::nanoseconds d) const = 0;
};

// The process-wide real clock. Never null.
const Clock& SystemClock();

// Seconds since the Unix epoch of a wall-clock time point.
inline int64_t ToUnixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace sparetime

#endif  // SPARETIME_BASE_CLOCK_H_
