// Fd: an owned file descriptor, and the POSIX I/O helpers every library uses.
//
// Invariants: every descriptor is opened with O_CLOEXEC; every read/write
// loop retries EINTR and continues after short transfers; errors come back as
// Status via ErrnoStatus with the path in the message. Durable replacement of
// a file is WriteFileAtomic: temp file, fsync, rename, fsync(dir).
//
// Thread safety: an Fd is a value owned by one holder; the positional helpers
// (ReadFullAt/WriteFullAt) may be used from several threads on one fd.
#ifndef SPARETIME_BASE_FD_H_
#define SPARETIME_BASE_FD_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/status.h"

namespace sparetime {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);
  // close(2) with its error reported (a write error can surface here).
  Status Close();

 private:
  int fd_ = -1;
};

// open(2) with O_CLOEXEC added. `what` names the file in errors.
Result<Fd> OpenFile(const std::string& path, int flags, mode_t mode = 0644);

// Reads exactly buf.size() bytes at `offset`; returns the number read, which is
// smaller only at end of file.
Result<size_t> ReadFullAt(int fd, std::span<std::byte> buf, uint64_t offset);
// Writes all of buf at `offset`.
Status WriteFullAt(int fd, std::span<const std::byte> buf, uint64_t offset);
// Writes all of buf at the current position.
Status WriteFull(int fd, std::span<const std::byte> buf);

Status Fsync(int fd, const std::string& what);
// fsync(2) on a directory, so that a rename or create inside it is durable.
Status FsyncDir(const std::string& dir);

// Reads a whole (small) file.
Result<std::string> ReadFileToString(const std::string& path);
// Replaces `path` durably with `contents`: write `path.tmp.<pid>`, fsync,
// rename over `path`, fsync the directory. Through Env::Default(); the
// overload taking an Env is in env.h.
Status WriteFileAtomic(const std::string& path, std::string_view contents, mode_t mode = 0644);

// Creates a directory (and parents); OK when it already exists.
Status MakeDirs(const std::string& path, mode_t mode = 0755);

// Bytes helpers: std::span<const std::byte> views of common containers.
inline std::span<const std::byte> AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace sparetime

#endif  // SPARETIME_BASE_FD_H_
