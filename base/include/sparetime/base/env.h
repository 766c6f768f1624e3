// Env: the file-system seam every durable write in imaging/ and the peer
// store goes through (LevelDB's Env, reduced to what the stores use).
//
// What goes through it: open/create, positional reads and writes, fsync and
// fdatasync, truncate, flock, and the name operations a crash can undo —
// create, rename, unlink, mkdir — plus the fsync of a directory that makes
// them durable. SQLite databases reach it through an SQLite VFS
// (sqlite_db.h: SqliteDb::Open with a non-default Env), so the pack index's
// and the catalog's own writes and fsyncs pass through the same seam.
//
// Invariants:
//  - Handles are plain file descriptors (Fd): the hot path (pack appends) is
//    one virtual call on top of pwrite(2); no per-file object, no buffering.
//  - Every method reports failures as Status naming the path (or `what`) and
//    the errno, through ErrnoStatus; EINTR is retried and short transfers
//    continued inside the implementation.
//  - Env::Default() is the POSIX implementation, lives for the whole process
//    and is thread-safe. Decorators (tests/testutil/fault_env.h) wrap another
//    Env and must be thread-safe too.
//  - Durability contract (what a power cut may drop, and what FaultEnv does
//    drop): bytes written to a file since its last Sync; a create, rename,
//    unlink or mkdir since the last SyncDir of the directory holding the name
//    (for a rename: of both directories).
//
// Plumbing: PackStoreOptions::env, CatalogOptions::env, the `env` argument
// of PeerStore::Open and SqliteDb::Open, and WriteFileAtomic(env, ...) (the
// fd.h overload uses Env::Default()); callers that do not care do not change.
#ifndef SPARETIME_BASE_ENV_H_
#define SPARETIME_BASE_ENV_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"

namespace sparetime {

enum class SyncMode {
  kFull,  // fsync(2): data and metadata
  kData,  // fdatasync(2): data and what is needed to read it back (size)
};

class Env {
 public:
  // The POSIX Env. Never null; never destroyed.
  static Env* Default();

  Env() = default;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  virtual ~Env();

  // --- Files (fd based) ---------------------------------------------------
  // open(2) with O_CLOEXEC added. With O_CREAT, creating the name is a
  // directory change (durable after SyncDir of the parent).
  virtual Result<Fd> Open(const std::string& path, int flags, mode_t mode) = 0;
  // Reads up to buf.size() bytes at `offset`; fewer only at end of file.
  virtual Result<size_t> ReadAt(int fd, std::span<std::byte> buf, uint64_t offset) = 0;
  // Writes all of `data` at `offset` (an append is a write at the file's end).
  virtual Status WriteAt(int fd, std::span<const std::byte> data, uint64_t offset) = 0;
  virtual Status Truncate(int fd, uint64_t size) = 0;
  // Makes the file's bytes durable. `what` names the file in errors.
  virtual Status Sync(int fd, SyncMode mode, const std::string& what) = 0;
  virtual Result<uint64_t> FileSize(int fd) = 0;
  // flock(2) with `operation` (LOCK_EX, LOCK_SH, LOCK_UN, | LOCK_NB). With
  // LOCK_NB, a lock held elsewhere is kUnavailable.
  virtual Status Lock(int fd, int operation, const std::string& what) = 0;

  // --- Names --------------------------------------------------------------
  // fsync(2) of a directory: creates, renames and unlinks in it become durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Unlink(const std::string& path) = 0;
  // mkdir(2); kAlreadyExists when the name exists.
  virtual Status CreateDir(const std::string& path, mode_t mode) = 0;
  // Whether `path` exists (stat(2) succeeds).
  virtual Result<bool> Exists(const std::string& path) = 0;
};

// --- Helpers built on any Env ---------------------------------------------

// Creates a directory and its missing parents; OK when it already exists.
// Each directory it creates is durable when it returns (its parent is
// synced); what callers put inside is theirs to sync.
Status MakeDirs(Env& env, const std::string& path, mode_t mode = 0755);
// Reads a whole (small) file.
Result<std::string> ReadFileToString(Env& env, const std::string& path);
// Replaces `path` durably with `contents`: write `path.tmp.<pid>`, Sync,
// rename over `path`, SyncDir. A crash at any point leaves the old file or
// the new one, whole.
Status WriteFileAtomic(Env& env, const std::string& path, std::string_view contents,
                       mode_t mode = 0644);
// The directory part of `path` ("." when none).
std::string DirName(const std::string& path);

}  // namespace sparetime

#endif  // SPARETIME_BASE_ENV_H_
