// RepoLock: the lock that keeps a prune and the jobs that read or add
// chunks apart. An flock(2) on DIR/lock (created 0600): every open
// repository holds it shared (backup, restore, verify, forget, snapshots);
// prune converts its holder's lock to exclusive, so no backup can take a
// chunk for "already stored" while prune releases it.
//
// flock locks belong to the open file, so two RepoLocks conflict even in one
// process. Waits are bounded: Acquire and Convert poll and give up with
// kUnavailable naming the lock file after `wait`.
//
// Thread safety: one RepoLock is used by one thread at a time.
#ifndef SPARETIME_IMAGING_REPO_LOCK_H_
#define SPARETIME_IMAGING_REPO_LOCK_H_

#include <chrono>
#include <string>

#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"

namespace sparetime {

class RepoLock {
 public:
  enum class Mode { kShared, kExclusive };

  // Locks DIR/lock in `mode`, waiting at most `wait` for a conflicting holder
  // to let go.
  static Result<RepoLock> Acquire(const std::string& dir, Mode mode,
                                  std::chrono::milliseconds wait);

  // Changes the mode. On a timeout the lock is back in its old mode (or, if
  // even that could not be had within `wait`, not held: held() is false).
  Status Convert(Mode mode, std::chrono::milliseconds wait);

  bool held() const { return held_; }
  Mode mode() const { return mode_; }
  const std::string& path() const { return path_; }

 private:
  RepoLock(Fd fd, std::string path, Mode mode) : fd_(std::move(fd)), path_(std::move(path)), mode_(mode) {}
  Fd fd_;
  std::string path_;
  Mode mode_;
  bool held_ = true;
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_REPO_LOCK_H_
