// PosixEnv: Env::Default(), straight onto the system calls (see env.h), and
// the helpers every Env shares (MakeDirs, ReadFileToString, WriteFileAtomic).
//
// Invariants: EINTR is retried everywhere; a short pread/pwrite continues;
// every error names the path or the caller's `what`.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "sparetime/base/env.h"
#include "sqlite_env_vfs.h"

namespace sparetime {

namespace {

class PosixEnv final : public Env {
 public:
  Result<Fd> Open(const std::string& path, int flags, mode_t mode) override {
    return OpenFile(path, flags, mode);
  }

  Result<size_t> ReadAt(int fd, std::span<std::byte> buf, uint64_t offset) override {
    return ReadFullAt(fd, buf, offset);
  }

  Status WriteAt(int fd, std::span<const std::byte> data, uint64_t offset) override {
    return WriteFullAt(fd, data, offset);
  }

  Status Truncate(int fd, uint64_t size) override {
    while (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR) return ErrnoStatus("ftruncate to " + std::to_string(size), errno);
    }
    return Status::Ok();
  }

  Status Sync(int fd, SyncMode mode, const std::string& what) override {
    for (;;) {
      const int rc = mode == SyncMode::kData ? ::fdatasync(fd) : ::fsync(fd);
      if (rc == 0) return Status::Ok();
      if (errno != EINTR) return ErrnoStatus("fsync " + what, errno);
    }
  }

  Result<uint64_t> FileSize(int fd) override {
    struct stat sb;
    if (::fstat(fd, &sb) != 0) return ErrnoStatus("fstat", errno);
    return static_cast<uint64_t>(sb.st_size);
  }

  Status Lock(int fd, int operation, const std::string& what) override {
    while (::flock(fd, operation) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return Unavailable(what + " is locked by another writer");
      return ErrnoStatus("flock " + what, errno);
    }
    return Status::Ok();
  }

  Status SyncDir(const std::string& dir) override {
    ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
    return Sync(fd.get(), SyncMode::kFull, dir);
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0)
      return ErrnoStatus("rename " + from + " to " + to, errno);
    return Status::Ok();
  }

  Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink " + path, errno);
    return Status::Ok();
  }

  Status CreateDir(const std::string& path, mode_t mode) override {
    if (::mkdir(path.c_str(), mode) != 0) return ErrnoStatus("mkdir " + path, errno);
    return Status::Ok();
  }

  Result<bool> Exists(const std::string& path) override {
    struct stat sb;
    if (::stat(path.c_str(), &sb) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return ErrnoStatus("stat " + path, errno);
  }
};

}  // namespace

Env::~Env() { ReleaseSqliteVfs(this); }

Env* Env::Default() {
  static PosixEnv* const env = new PosixEnv();  // never destroyed: used until exit
  return env;
}

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status MakeDirs(Env& env, const std::string& path, mode_t mode) {
  if (path.empty()) return Status::Ok();
  struct stat sb;
  if (::stat(path.c_str(), &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return Status::Ok();
    return AlreadyExists(path + " exists and is not a directory");
  }
  std::string parent = DirName(path);
  if (parent != path && parent != "." && parent != "/")
    ST_RETURN_IF_ERROR(MakeDirs(env, parent, mode));
  Status st = env.CreateDir(path, mode);
  if (st.code() == ErrorCode::kAlreadyExists) return Status::Ok();  // a racing creator
  ST_RETURN_IF_ERROR(st);
  // The new entry is durable only once its parent directory is synced: a
  // power cut after Repository::Init returned would otherwise lose the
  // whole repository (crash_repository_test).
  return env.SyncDir(parent == path ? "." : parent);
}

Result<std::string> ReadFileToString(Env& env, const std::string& path) {
  ST_ASSIGN_OR_RETURN(Fd fd, env.Open(path, O_RDONLY, 0));
  std::string out;
  std::byte buf[65536];
  for (;;) {
    ST_ASSIGN_OR_RETURN(size_t n, env.ReadAt(fd.get(), buf, out.size()));
    if (!n) break;
    out.append(reinterpret_cast<const char*>(buf), n);
    if (n < sizeof buf) break;
  }
  return out;
}

Status WriteFileAtomic(Env& env, const std::string& path, std::string_view contents,
                       mode_t mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    ST_ASSIGN_OR_RETURN(Fd fd, env.Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode));
    Status st = env.WriteAt(fd.get(), AsBytes(contents), 0);
    if (st.ok()) st = env.Sync(fd.get(), SyncMode::kFull, tmp);
    if (st.ok()) st = fd.Close();
    if (!st.ok()) {
      env.Unlink(tmp).IgnoreError();  // best effort: a leftover temp file is harmless
      return st.WithContext("writing " + path);
    }
  }
  Status st = env.Rename(tmp, path);
  if (!st.ok()) {
    env.Unlink(tmp).IgnoreError();
    return st;
  }
  return env.SyncDir(DirName(path)).WithContext("making the new " + path + " durable");
}

}  // namespace sparetime
