// The Env-backed SQLite VFS (see sqlite_env_vfs.h).
//
// Invariants: an EnvFile is placement-constructed in the sqlite3_file memory
// SQLite hands to xOpen and destroyed in xClose (or in xOpen on failure,
// with pMethods left null so SQLite does not call xClose); its `real` file
// lives in the same allocation, right behind it.
#include "sqlite_env_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>

#include "sparetime/base/mutex.h"

namespace sparetime {

namespace {

thread_local int last_errno = 0;

// errno of a failed Env call, for sqlite3_system_errno (xGetLastError).
int ErrnoOf(const Status& st) {
  switch (st.code()) {
    case ErrorCode::kNoSpace:
      return ENOSPC;
    case ErrorCode::kNotFound:
      return ENOENT;
    case ErrorCode::kPermissionDenied:
      return EACCES;
    default:
      return EIO;
  }
}

int Fail(const Status& st, int rc) {
  last_errno = ErrnoOf(st);
  if (st.code() == ErrorCode::kNoSpace) return SQLITE_FULL;
  return rc;
}

struct EnvVfs {
  sqlite3_vfs vfs;  // first: SQLite passes &vfs around
  Env* env;
  sqlite3_vfs* unix_vfs;
  std::string name;
};

struct EnvFile {
  sqlite3_file base;  // first: SQLite passes &base around
  Env* env;
  Fd fd;
  std::string path;
  bool sync_dir = false;  // a new journal/WAL: the first Sync also syncs its directory
  sqlite3_file* real;     // the unix VFS's file: locks and shm
};

EnvFile* Self(sqlite3_file* f) { return reinterpret_cast<EnvFile*>(f); }
sqlite3_file* Real(sqlite3_file* f) { return Self(f)->real; }
EnvVfs* VfsOf(sqlite3_vfs* v) { return reinterpret_cast<EnvVfs*>(v); }

int xClose(sqlite3_file* f) {
  EnvFile* self = Self(f);
  int rc = self->real->pMethods != nullptr ? self->real->pMethods->xClose(self->real) : SQLITE_OK;
  self->~EnvFile();
  return rc;
}

int xRead(sqlite3_file* f, void* buf, int amount, sqlite3_int64 offset) {
  EnvFile* self = Self(f);
  std::span<std::byte> out(static_cast<std::byte*>(buf), static_cast<size_t>(amount));
  Result<size_t> n = self->env->ReadAt(self->fd.get(), out, static_cast<uint64_t>(offset));
  if (!n.ok()) return Fail(n.status(), SQLITE_IOERR_READ);
  if (*n < out.size()) {
    std::memset(out.data() + *n, 0, out.size() - *n);
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int xWrite(sqlite3_file* f, const void* buf, int amount, sqlite3_int64 offset) {
  EnvFile* self = Self(f);
  std::span<const std::byte> in(static_cast<const std::byte*>(buf), static_cast<size_t>(amount));
  Status st = self->env->WriteAt(self->fd.get(), in, static_cast<uint64_t>(offset));
  return st.ok() ? SQLITE_OK : Fail(st, SQLITE_IOERR_WRITE);
}

int xTruncate(sqlite3_file* f, sqlite3_int64 size) {
  EnvFile* self = Self(f);
  Status st = self->env->Truncate(self->fd.get(), static_cast<uint64_t>(size));
  return st.ok() ? SQLITE_OK : Fail(st, SQLITE_IOERR_TRUNCATE);
}

int xSync(sqlite3_file* f, int flags) {
  EnvFile* self = Self(f);
  const SyncMode mode = (flags & SQLITE_SYNC_DATAONLY) ? SyncMode::kData : SyncMode::kFull;
  Status st = self->env->Sync(self->fd.get(), mode, self->path);
  if (!st.ok()) return Fail(st, SQLITE_IOERR_FSYNC);
  if (self->sync_dir) {
    st = self->env->SyncDir(DirName(self->path));
    if (!st.ok()) return Fail(st, SQLITE_IOERR_DIR_FSYNC);
    self->sync_dir = false;
  }
  return SQLITE_OK;
}

int xFileSize(sqlite3_file* f, sqlite3_int64* size) {
  EnvFile* self = Self(f);
  Result<uint64_t> n = self->env->FileSize(self->fd.get());
  if (!n.ok()) return Fail(n.status(), SQLITE_IOERR_FSTAT);
  *size = static_cast<sqlite3_int64>(*n);
  return SQLITE_OK;
}

int xLock(sqlite3_file* f, int level) { return Real(f)->pMethods->xLock(Real(f), level); }
int xUnlock(sqlite3_file* f, int level) { return Real(f)->pMethods->xUnlock(Real(f), level); }
int xCheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int xFileControl(sqlite3_file* f, int op, void* arg) {
  // Size hints and chunk sizes would make the unix file grow its own fd,
  // behind the Env's back.
  if (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE) return SQLITE_OK;
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int xSectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int xDeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int xShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
}
int xShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void xShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int xShmUnmap(sqlite3_file* f, int del) { return Real(f)->pMethods->xShmUnmap(Real(f), del); }

const sqlite3_io_methods kEnvFileMethods = {
    2,  // shm (WAL) but no mmap: every page is read through xRead
    xClose,           xRead,        xWrite,   xTruncate,   xSync,
    xFileSize,        xLock,        xUnlock,  xCheckReservedLock,
    xFileControl,     xSectorSize,  xDeviceCharacteristics,
    xShmMap,          xShmLock,     xShmBarrier, xShmUnmap,
    nullptr,          nullptr,
};

int xOpen(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  EnvVfs* vfs = VfsOf(v);
  constexpr int kDurable = SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL;
  if (name == nullptr || (flags & kDurable) == 0 || (flags & SQLITE_OPEN_DELETEONCLOSE) != 0) {
    // Temp files and the like: not durable state, the unix VFS alone.
    return vfs->unix_vfs->xOpen(vfs->unix_vfs, name, f, flags, out_flags);
  }
  f->pMethods = nullptr;
  EnvFile* self = new (f) EnvFile();
  self->env = vfs->env;
  self->path = name;
  self->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + sizeof(EnvFile));
  std::memset(self->real, 0, static_cast<size_t>(vfs->unix_vfs->szOsFile));

  int open_flags = (flags & SQLITE_OPEN_READONLY) ? O_RDONLY : O_RDWR;
  bool created = false;
  if (flags & SQLITE_OPEN_CREATE) {
    Result<bool> exists = self->env->Exists(self->path);
    if (!exists.ok()) {
      self->~EnvFile();
      return Fail(exists.status(), SQLITE_CANTOPEN);
    }
    created = !*exists;
    open_flags |= O_CREAT;
    if (flags & SQLITE_OPEN_EXCLUSIVE) open_flags |= O_EXCL;
  }
  Result<Fd> fd = self->env->Open(self->path, open_flags, 0644);
  if (!fd.ok()) {
    self->~EnvFile();
    return Fail(fd.status(), SQLITE_CANTOPEN);
  }
  self->fd = std::move(*fd);
  self->sync_dir = created && (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) != 0;
  // The file exists now; the unix VFS opens it for locks and shm only.
  const int rc = vfs->unix_vfs->xOpen(vfs->unix_vfs, name, self->real,
                                      flags & ~(SQLITE_OPEN_EXCLUSIVE), out_flags);
  if (rc != SQLITE_OK) {
    if (self->real->pMethods != nullptr) self->real->pMethods->xClose(self->real);
    self->~EnvFile();
    return rc;
  }
  f->pMethods = &kEnvFileMethods;
  return SQLITE_OK;
}

int xDelete(sqlite3_vfs* v, const char* name, int sync_dir) {
  EnvVfs* vfs = VfsOf(v);
  Status st = vfs->env->Unlink(name);
  if (!st.ok()) {
    if (st.code() == ErrorCode::kNotFound) return SQLITE_IOERR_DELETE_NOENT;
    return Fail(st, SQLITE_IOERR_DELETE);
  }
  if (sync_dir) {
    st = vfs->env->SyncDir(DirName(name));
    if (!st.ok()) return Fail(st, SQLITE_IOERR_DIR_FSYNC);
  }
  return SQLITE_OK;
}

int xAccess(sqlite3_vfs* v, const char* name, int flags, int* out) {
  sqlite3_vfs* u = VfsOf(v)->unix_vfs;
  return u->xAccess(u, name, flags, out);
}
int xFullPathname(sqlite3_vfs* v, const char* name, int n, char* out) {
  sqlite3_vfs* u = VfsOf(v)->unix_vfs;
  return u->xFullPathname(u, name, n, out);
}
int xRandomness(sqlite3_vfs* v, int n, char* out) {
  sqlite3_vfs* u = VfsOf(v)->unix_vfs;
  return u->xRandomness(u, n, out);
}
int xSleep(sqlite3_vfs* v, int us) {
  sqlite3_vfs* u = VfsOf(v)->unix_vfs;
  return u->xSleep(u, us);
}
int xCurrentTime(sqlite3_vfs* v, double* out) {
  sqlite3_vfs* u = VfsOf(v)->unix_vfs;
  return u->xCurrentTime(u, out);
}
int xCurrentTimeInt64(sqlite3_vfs* v, sqlite3_int64* out) {
  sqlite3_vfs* u = VfsOf(v)->unix_vfs;
  return u->xCurrentTimeInt64(u, out);
}
int xGetLastError(sqlite3_vfs*, int n, char* out) {
  if (n > 0 && out != nullptr) out[0] = '\0';
  return last_errno;
}

Mutex registry_mu;
std::map<Env*, std::unique_ptr<EnvVfs>>& Registry() REQUIRES(registry_mu) {
  static auto* registry = new std::map<Env*, std::unique_ptr<EnvVfs>>();
  return *registry;
}

}  // namespace

Result<std::string> SqliteVfsFor(Env* env) {
  MutexLock l(registry_mu);
  auto& registry = Registry();
  auto it = registry.find(env);
  if (it != registry.end()) return it->second->name;
  sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
  if (unix_vfs == nullptr) return Internal("SQLite has no unix VFS to build the Env VFS on");
  auto vfs = std::make_unique<EnvVfs>();
  vfs->env = env;
  vfs->unix_vfs = unix_vfs;
  char name[64];
  std::snprintf(name, sizeof name, "sparetime-env-%p", static_cast<void*>(env));
  vfs->name = name;
  sqlite3_vfs& s = vfs->vfs;
  std::memset(&s, 0, sizeof s);
  s.iVersion = 2;
  s.szOsFile = static_cast<int>(sizeof(EnvFile)) + unix_vfs->szOsFile;
  s.mxPathname = unix_vfs->mxPathname;
  s.zName = vfs->name.c_str();
  s.xOpen = xOpen;
  s.xDelete = xDelete;
  s.xAccess = xAccess;
  s.xFullPathname = xFullPathname;
  s.xRandomness = xRandomness;
  s.xSleep = xSleep;
  s.xCurrentTime = xCurrentTime;
  s.xGetLastError = xGetLastError;
  s.xCurrentTimeInt64 = xCurrentTimeInt64;
  const int rc = sqlite3_vfs_register(&s, /*makeDflt=*/0);
  if (rc != SQLITE_OK)
    return Internal(std::string("registering the Env SQLite VFS: ") + sqlite3_errstr(rc));
  std::string out = vfs->name;
  registry.emplace(env, std::move(vfs));
  return out;
}

void ReleaseSqliteVfs(Env* env) {
  MutexLock l(registry_mu);
  auto& registry = Registry();
  auto it = registry.find(env);
  if (it == registry.end()) return;
  sqlite3_vfs_unregister(&it->second->vfs);
  registry.erase(it);
}

}  // namespace sparetime
