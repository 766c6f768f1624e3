// Mutex, MutexLock and the clang thread-safety attributes.
//
// libstdc++'s std::mutex carries no capability attributes, so clang's
// -Wthread-safety cannot check code that uses it. Guarded state in this tree
// uses these instead:
//
//   Mutex mu_;
//   int count_ GUARDED_BY(mu_);
//   void Bump() EXCLUDES(mu_) { MutexLock l(mu_); ++count_; }
//   void BumpLocked() REQUIRES(mu_) { ++count_; }
//
// Condition variables wait on the Mutex itself (std::condition_variable_any
// takes any BasicLockable), through MutexLock::Wait so the analysis knows the
// lock is held again when the wait returns.
//
// Under g++ the attributes expand to nothing; the clang check
// (scripts/check-thread-safety) compiles every file with -Wthread-safety
// -Werror.
#ifndef SPARETIME_BASE_MUTEX_H_
#define SPARETIME_BASE_MUTEX_H_

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define ST_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define ST_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) ST_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY ST_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) ST_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) ST_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) ST_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) ST_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) ST_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) ST_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) ST_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) ST_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) ST_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) ST_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) ST_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS ST_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace sparetime {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the caller holds the lock (no run-time check).
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  std::mutex mu_;
};

// Holds `mu` for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Waits on `cv` (the lock is released while waiting and held on return).
  void Wait(std::condition_variable_any& cv) { cv.wait(mu_); }
  template <typename Pred>
  void Wait(std::condition_variable_any& cv, Pred pred) {
    cv.wait(mu_, std::move(pred));
  }
  template <typename Duration, typename Pred>
  bool WaitFor(std::condition_variable_any& cv, Duration d, Pred pred) {
    return cv.wait_for(mu_, d, std::move(pred));
  }
  template <typename TimePoint, typename Pred>
  bool WaitUntil(std::condition_variable_any& cv, TimePoint t, Pred pred) {
    return cv.wait_until(mu_, t, std::move(pred));
  }

 private:
  Mutex& mu_;
};

}  // namespace sparetime

#endif  // SPARETIME_BASE_MUTEX_H_
