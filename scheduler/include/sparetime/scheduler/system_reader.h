// SystemReader: the only way the scheduler's sensors touch the OS. It reads
// small files, lists directories, stats files and opens devices for polling,
// all under a root directory ("/" in production). Tests point the root at a
// fake tree (proc/, sys/, dev/, run/) built in a temporary directory, so the
// sensors run unchanged against canned /proc and /sys contents.
//
// Paths given to it are absolute ("/proc/stat") and are resolved as
// root + path. Errors name the resolved path; a missing file is kNotFound.
//
// Thread safety: immutable after construction; safe from any thread.
#ifndef SPARETIME_SCHEDULER_SYSTEM_READER_H_
#define SPARETIME_SCHEDULER_SYSTEM_READER_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"

namespace sparetime::scheduler {

struct FileTimes {
  std::chrono::system_clock::time_point atime;
  std::chrono::system_clock::time_point mtime;
};

class SystemReader {
 public:
  // `root` "/" reads the live system; any other directory is a fake tree.
  explicit SystemReader(std::string root = "/");

  const std::string& root() const { return root_; }
  // root + path, e.g. "/tmp/x/proc/stat" for "/proc/stat".
  std::string HostPath(std::string_view path) const;

  // Whole contents of a small file; kNotFound when it does not exist.
  Result<std::string> ReadFile(std::string_view path) const;
  // As ReadFile, but a missing file is nullopt rather than an error.
  Result<std::optional<std::string>> ReadFileIfExists(std::string_view path) const;
  // stat(2) (following symlinks): access and modification times.
  Result<FileTimes> Stat(std::string_view path) const;
  bool Exists(std::string_view path) const;
  // Entry names (no "." or ".."), sorted; kNotFound when the directory is missing.
  Result<std::vector<std::string>> ListDir(std::string_view path) const;
  // open(2) O_RDONLY | O_NONBLOCK | O_CLOEXEC, for poll(2)-based watchers.
  Result<Fd> OpenForPolling(std::string_view path) const;

 private:
  std::string root_;  // without a trailing slash; "" for "/"
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_SYSTEM_READER_H_
