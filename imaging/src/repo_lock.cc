// RepoLock: flock(2) on DIR/lock with bounded waits (see repo_lock.h).
//
// Invariant: held_ is true exactly when fd_ holds a lock of mode_. flock has
// no timeout, so waits poll LOCK_NB every kPoll. Converting is not atomic in
// Linux (the old lock goes first, and a failed LOCK_NB conversion leaves
// none), so Convert unlocks explicitly and re-takes the old mode on failure.
#include "sparetime/imaging/repo_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <thread>

namespace sparetime {
namespace {

constexpr std::chrono::milliseconds kPoll{20};

int Op(RepoLock::Mode mode) { return mode == RepoLock::Mode::kShared ? LOCK_SH : LOCK_EX; }

// Tries to take `mode` on `fd` until `wait` has passed: OK, kUnavailable
// (someone else holds a conflicting lock), or the errno error.
Status LockWithin(int fd, RepoLock::Mode mode, std::chrono::milliseconds wait,
                  const std::string& path) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (::flock(fd, Op(mode) | LOCK_NB) == 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return ErrnoStatus("flock " + path, errno);
    if (std::chrono::steady_clock::now() >= deadline) {
      return Unavailable(path + " is held by another sparetime process");
    }
    std::this_thread::sleep_for(kPoll);
  }
}

}  // namespace

Result<RepoLock> RepoLock::Acquire(const std::string& dir, Mode mode,
                                   std::chrono::milliseconds wait) {
  const std::string path = dir + "/lock";
  ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(path, O_RDWR | O_CREAT, 0600));
  ST_RETURN_IF_ERROR(LockWithin(fd.get(), mode, wait, path));
  return RepoLock(std::move(fd), path, mode);
}

Status RepoLock::Convert(Mode mode, std::chrono::milliseconds wait) {
  if (held_ && mode == mode_) return Status::Ok();
  const Mode old = mode_;
  if (held_ && ::flock(fd_.get(), LOCK_UN) != 0) return ErrnoStatus("unlock " + path_, errno);
  held_ = false;
  Status st = LockWithin(fd_.get(), mode, wait, path_);
  if (st.ok()) {
    mode_ = mode;
    held_ = true;
    return st;
  }
  held_ = LockWithin(fd_.get(), old, wait, path_).ok();
  return st;
}

}  // namespace sparetime
