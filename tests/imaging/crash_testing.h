// The two matrices every crash test runs over a FaultEnv (fault_env.h):
//
//  - CrashAtEverySyncPoint: run the workload once to count its sync points
//    N (file fsyncs and directory fsyncs, SQLite's included), then N + 1
//    times more from the same starting state, cutting the power at sync
//    point k = 0..N (k == N: after the last one, before a clean shutdown),
//    dropping what was not durable, and letting the test check the reopened
//    state.
//  - FailEveryMutation: the same, but instead of a power cut the k-th
//    mutating operation (write, truncate, fsync, create, rename, unlink,
//    mkdir) fails once with EIO or ENOSPC (alternating); afterwards the
//    power is cut too, so an error that was swallowed and lost data shows.
//
// Debugging: SPARETIME_CRASH_POINT=k runs only point k (with
// SPARETIME_FAULT_TRACE set, FaultEnv prints every operation).
#ifndef SPARETIME_TESTS_IMAGING_CRASH_TESTING_H_
#define SPARETIME_TESTS_IMAGING_CRASH_TESTING_H_

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include "testutil/fault_env.h"

namespace sparetime::testing {

// SPARETIME_CRASH_POINT, when set: the only point to run.
inline bool SkipPoint(uint64_t k) {
  const char* only = std::getenv("SPARETIME_CRASH_POINT");
  return only != nullptr && std::strtoull(only, nullptr, 10) != k;
}

struct CrashPoint {
  uint64_t k = 0;      // the sync point (or mutation) where it happened
  uint64_t total = 0;  // sync points (mutations) in an uncut run
  int error = 0;       // FailEveryMutation: the injected errno
  std::string undone;  // what the power cut dropped
  std::string Name() const {
    return "point " + std::to_string(k) + " of " + std::to_string(total) +
           (error ? std::string(error == ENOSPC ? " (ENOSPC)" : " (EIO)") : "") + "; dropped: " +
           (undone.empty() ? "nothing" : undone);
  }
};

// `reset` restores the starting state (outside the FaultEnv); `run` does
// the workload through `env`; `check` inspects the state after the cut.
// Returns the number of sync points of an uncut run.
inline uint64_t CrashAtEverySyncPoint(FaultEnv& env, const std::function<void()>& reset,
                                      const std::function<void()>& run,
                                      const std::function<void(const CrashPoint&)>& check) {
  reset();
  const uint64_t before = env.Count(kOpAnySync);
  run();
  const uint64_t total = env.Count(kOpAnySync) - before;
  env.PowerCut();
  for (uint64_t k = 0; k <= total; ++k) {
    if (SkipPoint(k)) continue;
    reset();
    env.CrashAtSync(k);
    run();
    CrashPoint p{k, total, 0, env.PowerCut()};
    SCOPED_TRACE(p.Name());
    check(p);
    if (::testing::Test::HasFatalFailure()) break;
  }
  return total;
}

// Returns the number of mutations of an unfailed run.
inline uint64_t FailEveryMutation(FaultEnv& env, const std::function<void()>& reset,
                                  const std::function<void()>& run,
                                  const std::function<void(const CrashPoint&)>& check) {
  reset();
  const uint64_t before = env.Count(kOpAnyMutation);
  run();
  const uint64_t total = env.Count(kOpAnyMutation) - before;
  env.PowerCut();
  for (uint64_t k = 0; k < total; ++k) {
    if (SkipPoint(k)) continue;
    reset();
    const int error = k % 2 ? ENOSPC : EIO;
    env.SetFault({.ops = kOpAnyMutation, .path_contains = "", .nth = k, .error = error});
    run();
    const uint64_t injected = env.faults_injected();
    CrashPoint p{k, total, error, env.PowerCut()};
    SCOPED_TRACE(p.Name());
    EXPECT_GE(injected, 1u) << "the workload did fewer mutations than in the unfailed run";
    check(p);
    if (::testing::Test::HasFatalFailure()) break;
  }
  return total;
}

// The Status code an injected errno must surface as.
inline ErrorCode CodeFor(int error) {
  return error == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIoError;
}

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_IMAGING_CRASH_TESTING_H_
