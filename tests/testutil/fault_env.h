// FaultEnv: an Env decorator for tests that fails chosen operations with an
// errno (EIO, ENOSPC, ...) and simulates power loss (LevelDB's
// FaultInjectionTestEnv, extended to overwrites, renames and mkdir).
//
// Power-loss model (env.h's durability contract, worst case): after
// PowerCut(), every file holds exactly the bytes it held at its last Sync
// (writes and truncations since are undone, overwrites included), and every
// create, mkdir, rename and unlink not yet made durable by a SyncDir of its
// directory (both directories for a rename) is undone, newest first. The
// -shm files and temp files SQLite keeps outside the Env are left alone:
// SQLite rebuilds the wal-index from the WAL on the next open.
//
// Invariants:
//  - Files are tracked by inode (st_dev, st_ino), so a tracked state follows
//    renames and survives the fd being closed and its number reused.
//  - A file is "dirty" from its first write/truncate after a Sync; its
//    durable size and the pre-images of the durable bytes it overwrote are
//    kept until the next Sync, so a restore is exact.
//  - Files not touched through this Env are never changed by PowerCut.
//  - After CrashAtSync(k) fires, the power is off: every mutating call
//    (write, truncate, sync, create, rename, unlink, mkdir) fails with EIO
//    and changes nothing, reads still work, until PowerCut() restores the
//    durable state and turns the power back on.
//
// Why in tests/testutil and not base/: nothing in the daemon wants to fail
// its own writes; keeping the decorator out of the product keeps its
// bookkeeping (pre-images held in memory) out of it too.
//
// Debugging: with SPARETIME_FAULT_TRACE set, every operation is printed to
// stderr.
//
// Thread safety: every method may be called from any thread; one mutex
// serialises the bookkeeping (and the I/O it brackets).
#ifndef SPARETIME_TESTS_TESTUTIL_FAULT_ENV_H_
#define SPARETIME_TESTS_TESTUTIL_FAULT_ENV_H_

#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sparetime/base/env.h"
#include "sparetime/base/mutex.h"

namespace sparetime::testing {

// Operation kinds, for fault rules and counters (a bit mask).
enum FaultOp : uint32_t {
  kOpWrite = 1u << 0,     // WriteAt
  kOpSync = 1u << 1,      // Sync of a file
  kOpSyncDir = 1u << 2,   // SyncDir
  kOpTruncate = 1u << 3,  // Truncate, Open with O_TRUNC
  kOpCreate = 1u << 4,    // Open creating a file, CreateDir
  kOpRename = 1u << 5,
  kOpUnlink = 1u << 6,
  kOpAnySync = kOpSync | kOpSyncDir,
  kOpAnyMutation = 0x7f,
};

struct FaultRule {
  uint32_t ops = kOpWrite;     // which operations count
  std::string path_contains;   // only those on a path containing this (empty: all)
  uint64_t nth = 0;            // the 0-based matching operation that fails first
  int error = EIO;
  bool sticky = false;         // keep failing every later match (else only the nth)
};

class FaultEnv final : public Env {
 public:
  // `real_syncs`: pass Sync/SyncDir on to `base`. Off by default: the power
  // cut is simulated from this Env's own bookkeeping, so the disk's fsyncs
  // only cost time (a crash matrix runs hundreds of them).
  explicit FaultEnv(Env* base = Env::Default(), bool real_syncs = false)
      : base_(base), real_syncs_(real_syncs) {}
  ~FaultEnv() override;

  // Fails matching operations as the rule says (counting from now).
  void SetFault(FaultRule rule) EXCLUDES(mu_);
  void ClearFault() EXCLUDES(mu_);
  // Faults injected so far.
  uint64_t faults_injected() EXCLUDES(mu_);

  // Operations of the kinds in `mask` attempted through this Env so far.
  uint64_t Count(uint32_t mask) EXCLUDES(mu_);
  // Cuts the power at the k-th (0-based, counting from now) sync point (a
  // file Sync or a SyncDir): that sync and every later mutation fail with EIO.
  void CrashAtSync(uint64_t k) EXCLUDES(mu_);
  bool power_off() EXCLUDES(mu_);
  // Drops everything not durable (see the model above), forgets all
  // tracking and turns the power back on. Close every database and store
  // opened through this Env first (their fds would see the rolled-back
  // files). Returns what it undid, for test messages.
  std::string PowerCut() EXCLUDES(mu_);

  // Env.
  Result<Fd> Open(const std::string& path, int flags, mode_t mode) override;
  Result<size_t> ReadAt(int fd, std::span<std::byte> buf, uint64_t offset) override;
  Status WriteAt(int fd, std::span<const std::byte> data, uint64_t offset) override;
  Status Truncate(int fd, uint64_t size) override;
  Status Sync(int fd, SyncMode mode, const std::string& what) override;
  Result<uint64_t> FileSize(int fd) override;
  Status Lock(int fd, int operation, const std::string& what) override;
  Status SyncDir(const std::string& dir) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Unlink(const std::string& path) override;
  Status CreateDir(const std::string& path, mode_t mode) override;
  Result<bool> Exists(const std::string& path) override;

 private:
  using Inode = std::pair<dev_t, ino_t>;
  struct FileState {
    std::string path;  // its name now ("" when unknown or unlinked)
    bool dirty = false;
    uint64_t durable_size = 0;
    std::vector<std::pair<uint64_t, std::string>> undo;  // pre-images, oldest first
  };
  struct NameOp {
    enum Kind { kCreateFile, kCreateDir, kUnlink, kRename } kind;
    std::string path;                  // created, removed, or rename target
    std::string from;                  // rename source
    std::optional<std::string> stash;  // durable content of the removed/replaced file
    std::set<std::string> dirs;        // SyncDir still needed for these
  };

  // The injected error for one operation on `path`, or OK.
  Status Check(FaultOp op, const std::string& path) REQUIRES(mu_);
  Result<FileState*> StateOf(int fd) REQUIRES(mu_);
  // Marks `fs` dirty (remembering its durable size) if it is clean.
  void Dirty(FileState& fs, int fd) REQUIRES(mu_);
  // Records the pre-image of [offset, offset + len) that lies in durable bytes.
  Status Preimage(FileState& fs, int fd, uint64_t offset, uint64_t len) REQUIRES(mu_);
  // What a power cut would leave of the file at `path` (nullopt: no file).
  std::optional<std::string> DurableContent(const std::string& path) REQUIRES(mu_);
  void Forget(const std::string& path) REQUIRES(mu_);

  Env* const base_;
  const bool real_syncs_;
  Mutex mu_;
  std::optional<FaultRule> rule_ GUARDED_BY(mu_);
  uint64_t rule_matches_ GUARDED_BY(mu_) = 0;
  uint64_t faults_ GUARDED_BY(mu_) = 0;
  std::map<uint32_t, uint64_t> counts_ GUARDED_BY(mu_);
  std::optional<uint64_t> crash_at_ GUARDED_BY(mu_);
  uint64_t syncs_since_arm_ GUARDED_BY(mu_) = 0;
  bool power_off_ GUARDED_BY(mu_) = false;
  std::map<Inode, FileState> files_ GUARDED_BY(mu_);
  std::vector<NameOp> pending_ GUARDED_BY(mu_);
};

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_TESTUTIL_FAULT_ENV_H_
