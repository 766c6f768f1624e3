// POSIX file helpers: O_CLOEXEC on every open, EINTR retried, short
// transfers continued, durable replace by temp + fsync + rename + fsync(dir).
#include "sparetime/base/fd.h"

#include "sparetime/base/env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace sparetime {

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);  // errors matter only via Close()
  fd_ = fd;
}

Status Fd::Close() {
  if (fd_ < 0) return Status::Ok();
  int fd = release();
  // close(2) must not be retried on EINTR on Linux: the fd is gone either way.
  if (::close(fd) != 0 && errno != EINTR) return ErrnoStatus("close", errno);
  return Status::Ok();
}

Result<Fd> OpenFile(const std::string& path, int flags, mode_t mode) {
  for (;;) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return Fd(fd);
    if (errno != EINTR) return ErrnoStatus("open " + path, errno);
  }
}

Result<size_t> ReadFullAt(int fd, std::span<std::byte> buf, uint64_t offset) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read at offset " + std::to_string(offset + done), errno);
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
  }
  return done;
}

Status WriteFullAt(int fd, std::span<const std::byte> buf, uint64_t offset) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pwrite(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write at offset " + std::to_string(offset + done), errno);
    }
    if (n == 0) return NoSpace("write at offset " + std::to_string(offset + done) + ": no progress");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status WriteFull(int fd, std::span<const std::byte> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status Fsync(int fd, const std::string& what) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return ErrnoStatus("fsync " + what, errno);
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  return Fsync(fd.get(), dir);
}

Result<std::string> ReadFileToString(const std::string& path) {
  ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(path, O_RDONLY));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status WriteFileAtomic(const std::string& path, std::string_view contents, mode_t mode) {
  return WriteFileAtomic(*Env::Default(), path, contents, mode);
}

Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return Status::Ok();
  struct stat sb;
  if (::stat(path.c_str(), &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return Status::Ok();
    return AlreadyExists(path + " exists and is not a directory");
  }
  std::string parent = DirName(path);  // env.h
  if (parent != path && parent != "." && parent != "/") ST_RETURN_IF_ERROR(MakeDirs(parent, mode));
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return ErrnoStatus("mkdir " + path, errno);
  return Status::Ok();
}

}  // namespace sparetime
