// Mount a snapshot (issue 24): the use cases behind `sparetime mount`,
// `sparetime umount` and `sparetime restore --file`. FUSE itself is not
// here (only the CLI links libfuse3, agent/fusefs): ops opens the
// snapshot as random-access images (SnapshotImage: the whole disk and each
// partition, over imaging's SnapshotReader and partition table), checks
// and cleans mount points, attaches read-only loop devices to the image
// files once they are served, mounts the filesystems it recognises
// read-only, and undoes all of it.
//
// Invariants:
//   - Nothing is ever written: loop devices are attached read-only
//     (LO_FLAGS_READ_ONLY, with direct I/O) and autoclear (they go when their filesystem
//     is unmounted), ext4 is mounted ro,noload and xfs ro,norecovery, so
//     not even a journal replay touches the image.
//   - A partition is reached through its own image file (DIR/partN.img, an
//     offset view of the disk served by FUSE), never through /dev/loopNpM
//     (this kernel has no MSDOS partition scanning).
//   - A broken partition table or an unknown filesystem never stops the
//     mount: disk.img (and the partitions that were read) stay exposed and
//     the report says why the rest is not.
//   - The Backups stay open while mounted: their repository lock is held
//     shared, so backups (and sparetimed) go on, and a prune — which needs
//     the lock exclusive — is refused until the unmount (kUnavailable).
//   - Another host's backups (`--host H`) are H's to prune, from H, where
//     this box's lock means nothing: a SnapshotHold keeps a read hold on
//     the snapshot on every live peer (docs/peers.md "Read holds"), renewed
//     every third of its time and dropped at the unmount; while it lasts
//     the peers defer H's releases, so its prune frees nothing under the
//     mount. A mount killed without unmounting stops renewing: its holds
//     lapse after the hold time.
//   - A mount is recognised by its type (fuse.sparetime) and source
//     ("sparetime:<pid>") in /proc/self/mountinfo; it is stale when that
//     process is gone. Stale mounts are cleaned (everything at and below
//     the directory, deepest first, lazily) by the next mount or umount.
//
// Thread safety: SnapshotImage::ReadAt may be called concurrently.
#ifndef SPARETIME_OPS_MOUNT_H_
#define SPARETIME_OPS_MOUNT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/partition_table.h"
#include "sparetime/imaging/snapshot_reader.h"
#include "sparetime/ops/backups.h"

namespace sparetime::ops {

struct MountRequest {
  std::string snapshot = "latest";
  std::string device;  // for "latest": which device's newest snapshot
  uint64_t cache_bytes = 256ull << 20;
  unsigned readahead_chunks = 32;
  unsigned fetch_threads = 8;
  // A chunk that failed (offset in the disk image, the error): for the log.
  std::function<void(uint64_t offset, const Status& error)> on_damage;
};

// One file the mount shows.
struct ImageFile {
  std::string name;       // "disk.img", "part1.img"
  uint64_t offset = 0;    // where it starts in the disk image
  uint64_t size = 0;
  std::string fs;         // "ext4", "xfs", or "" (not recognised)
  std::string mount_dir;  // "part1" ("disk" for a bare filesystem) when fs is set
};

class SnapshotImage {
 public:
  SnapshotImage(Snapshot snapshot, std::unique_ptr<SnapshotReader> reader)
      : snapshot_(std::move(snapshot)), reader_(std::move(reader)) {}
  const Snapshot& snapshot() const { return snapshot_; }
  const PartitionTable& table() const { return table_; }
  // Set when the partition table is there but broken (only disk.img shown).
  const std::optional<Status>& table_error() const { return table_error_; }
  const std::vector<ImageFile>& files() const { return files_; }
  SnapshotReader& reader() { return *reader_; }
  // Reads `file` at `offset` (cut at its end).
  Result<size_t> ReadAt(const ImageFile& file, uint64_t offset, std::span<std::byte> out);

 private:
  friend Result<std::unique_ptr<SnapshotImage>> OpenSnapshotImage(Backups&, const MountRequest&);
  Snapshot snapshot_;
  std::unique_ptr<SnapshotReader> reader_;
  PartitionTable table_;
  std::optional<Status> table_error_;
  std::vector<ImageFile> files_;
};

// Finds the snapshot, loads its manifest, asks the peers where its chunks
// are (Backups::Prepare), reads the partition table and recognises the
// filesystems. `backups` must outlive the image.
Result<std::unique_ptr<SnapshotImage>> OpenSnapshotImage(Backups& backups,
                                                         const MountRequest& request);

// A read hold on `snapshot` while this object lives (see the invariants):
// Start asks every live peer once, then renews on its own thread every
// hold/3; the destructor drops the holds. `report` gets one line per peer
// that refuses or fails (and again when it recovers). For a local
// repository or this agent's own backups nothing is held (first() empty).
class SnapshotHold {
 public:
  static std::unique_ptr<SnapshotHold> Start(Backups& backups, const std::string& snapshot,
                                             std::chrono::seconds hold,
                                             std::function<void(const std::string&)> report);
  ~SnapshotHold();
  // The answers to the first round, one per peer asked.
  const std::vector<std::pair<std::string, Status>>& first() const;

 private:
  class Impl;
  explicit SnapshotHold(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The filesystem a superblock shows at the start of `file`: "ext4" (ext2/3/4
// magic), "xfs", or "".
std::string RecogniseFilesystem(SnapshotImage& image, const ImageFile& file);

// A sparetime mount found in /proc/self/mountinfo.
struct MountInfo {
  std::string dir;
  int pid = 0;       // the serving process (from "sparetime:<pid>")
  bool alive = false;
};
// The sparetime mount at `dir`, if there is one.
std::optional<MountInfo> FindSparetimeMount(const std::string& dir);

// What a mount may go on: `dir` exists, is a directory, is no mount, and is
// empty. A stale sparetime mount there is cleaned first (`cleaned` says so).
// kNotFound / kInvalidArgument / kAlreadyExists / kFailedPrecondition, each
// saying what to do.
Status PrepareMountPoint(const std::string& dir, bool* cleaned);

// Unmounts everything strictly below `dir`, deepest first (lazily when busy).
// The directories unmounted.
Result<std::vector<std::string>> UnmountBelow(const std::string& dir);

struct FilesystemMount {
  std::string image;  // the image file, DIR/part1.img
  std::string dir;    // where it is mounted, DIR/part1
  std::string fs;
  std::string loop;   // /dev/loopN
  Status status;      // why it is not mounted, when it is not
};
// For each image file with a recognised filesystem (served under `dir`):
// attaches a read-only loop device and mounts it at DIR/<mount_dir>.
std::vector<FilesystemMount> MountFilesystems(const std::string& dir, const SnapshotImage& image);

struct UnmountReport {
  int pid = 0;               // the process that served the mount
  bool signalled = false;    // it was alive and got SIGTERM
  bool stale = false;        // it was gone: cleaned here
  std::vector<std::string> unmounted;  // cleaned here (stale mounts)
};
// `sparetime umount DIR`: asks the serving process to unmount (SIGTERM) and
// waits up to `wait` for the mount to go; a stale mount is cleaned here.
// kNotFound when DIR is no sparetime mount.
Result<UnmountReport> Unmount(const std::string& dir, std::chrono::milliseconds wait);

struct CopyReport {
  uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0;
  uint64_t hardlinks = 0;  // names made as hard links to a file copied before
};
// Copies `source` (a file, symlink or directory tree) to `dest` with modes,
// owners, times and extended attributes. Names of one inode inside the tree
// stay one inode (hard links; `files` counts the inode once). `dest` must not exist (nothing is
// overwritten: kAlreadyExists).
Result<CopyReport> CopyOut(const std::string& source, const std::string& dest);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_MOUNT_H_
