// Devices: what the imager reads and the restorer writes.
//
// BlockDevice reads a regular file or a block device: size via BLKGETSIZE64
// (st_size for files), logical block size via BLKSSZGET, and an identity
// (see below). Reads are positional and may run in parallel; with direct_io
// the device is opened O_DIRECT and callers pass buffers aligned to
// AlignedBuffer's alignment. posix_fadvise(NOREUSE/DONTNEED) keeps a backup
// from flushing the page cache.
//
// RestoreTarget writes an image: to a regular file (created at the image size,
// holes punched so they stay holes) or to a block device (never smaller than
// the image; holes written as zeroes only when asked).
//
// Device identity. DeviceIdentity::Key() is what retention groups by and what
// the imager's resume journal is keyed on, so two distinct devices must never
// share a key (prune would then delete one's history), while one device
// should keep its key across reboots and /dev renames. Invariants of Key():
//   - base: the disk's WWID ("wwid:"), else its serial ("serial:") — real
//     hardware identities; else a loop device's backing file ("loopfile:",
//     with ":offset=O:sizelimit=L" when either is non-zero); else, for a
//     partition, its partition UUID ("partuuid:"); else the path:
//     a regular file's canonical path (real_path), a block device's path as
//     given ("path:").
//   - a partition (partition > 0) takes its whole disk's wwid / serial /
//     backing file as base and adds ":part=<number>:start=<byte offset>", so
//     equal-size partitions of one disk differ.
//   - the filesystem UUID is a hint only, never part of the key (clones of
//     one template image share it).
//   - every key ends in ":size=<bytes>": the same disk at another size is
//     another key.
//   - legacy_key, when set (only on catalog rows migrated from schema 1 whose
//     new key could not be computed from what was stored), is returned as is,
//     so such snapshots keep the group they had; legacy_ambiguous marks rows
//     whose legacy group may mix distinct devices (retention keeps them all).
// Keys unchanged from schema 1: whole disks with a WWID/serial, loop devices
// at offset 0 without a size limit, and files and block devices without a
// filesystem UUID named by their canonical path.
#ifndef SPARETIME_IMAGING_DEVICE_H_
#define SPARETIME_IMAGING_DEVICE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "sparetime/base/status.h"

namespace sparetime {

struct DeviceIdentity {
  std::string path;       // as given, e.g. /dev/loop3
  std::string kind;       // "block" or "file"
  uint64_t size = 0;
  uint32_t logical_block_size = 512;
  std::string serial;     // (whole disk's) device/serial or serial, when present
  std::string wwid;       // (whole disk's) device/wwid or wwid
  std::string backing_file;  // loop devices (or a loop's partition): loop/backing_file
  std::string fs_uuid;    // ext2/3/4 or XFS superblock UUID: a hint, not in Key()
  uint32_t partition = 0;    // partition number (sysfs `partition`); 0: not a partition
  uint64_t start = 0;        // partition start in bytes (sysfs `start` x 512)
  std::string part_uuid{};     // partition UUID (uevent PARTUUID), when the kernel has one
  uint64_t loop_offset = 0;     // loop/offset (bytes into the backing file)
  uint64_t loop_sizelimit = 0;  // loop/sizelimit (0: up to the end of the file)
  std::string real_path{};     // regular files: the canonical path at open
  std::string legacy_key{};    // see the header comment; empty on fresh identities
  bool legacy_ambiguous = false;

  // The grouping key described in the header comment.
  std::string Key() const;
  // Every field; the last two only when set.
  nlohmann::json ToJson() const;
  // Required: path, kind, size, logical_block_size; the rest default when
  // absent (documents written by older versions).
  static Result<DeviceIdentity> FromJson(const nlohmann::json& j);
};

// A heap buffer aligned for O_DIRECT (4096 bytes).
class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 4096;
  explicit AlignedBuffer(size_t size);
  AlignedBuffer(AlignedBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();
  std::byte* data() { return p_; }
  const std::byte* data() const { return p_; }
  size_t size() const { return n_; }
  std::span<std::byte> span() { return {p_, n_}; }

 private:
  std::byte* p_ = nullptr;
  size_t n_ = 0;
};

struct DeviceOpenOptions {
  // Aligned reads bypass the page cache: no copy through it and no other
  // process's cached pages evicted, but no kernel readahead either (the
  // imager keeps two reads in flight instead; docs/performance.md).
  // Filesystems without O_DIRECT fall back to buffered reads by themselves.
  bool direct_io = true;
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual const DeviceIdentity& identity() const = 0;
  uint64_t size() const { return identity().size; }
  // Reads exactly buf.size() bytes at offset (less only where the device
  // ends). Thread-safe. kIoError naming the device and offset on failure.
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) = 0;
  // Tells the kernel we are done with [offset, offset+len) (drops it from cache).
  virtual void DoneWith(uint64_t offset, uint64_t len) = 0;
  // The first offset >= `offset` that may hold data: SEEK_DATA on sparse
  // image files, so their holes are never read; size() when only a hole
  // follows. Devices that cannot tell return `offset`.
  virtual uint64_t NextDataOffset(uint64_t offset) = 0;
};

// Opens a device or image file read-only. kNotFound when missing,
// kPermissionDenied when unreadable, kInvalidArgument for a directory or
// other non-device.
Result<std::unique_ptr<BlockDevice>> OpenBlockDevice(const std::string& path,
                                                     DeviceOpenOptions options = {});

struct TargetOptions {
  bool zero_holes = false;  // write zeroes for holes on block devices
  // Aligned writes with O_DIRECT through a second descriptor; tails and
  // filesystems refusing it stay buffered. No copy into the page cache and
  // none of it filled; into Reserve()d blocks the writes run side by side.
  // Off: buffered writes with early writeback (docs/performance.md).
  bool direct_io = true;
};

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

class RestoreTarget {
 public:
  virtual ~RestoreTarget() = default;
  virtual bool is_block_device() const = 0;
  virtual uint64_t size() const = 0;
  // Thread-safe positional write.
  virtual Status WriteAt(uint64_t offset, std::span<const std::byte> data) = 0;
  // A hole of `len` zero bytes at offset: punched on files (or skipped when the
  // file was freshly created), zero-written on devices when zero_holes.
  virtual Status Hole(uint64_t offset, uint64_t len) = 0;
  // Allocates the ranges (an image's data, before any write) on a regular
  // file, so no later write fails for want of space and O_DIRECT writes into
  // them can run side by side. kNoSpace when the filesystem lacks room; on a
  // file this restore created nothing stays reserved then. A no-op on block
  // devices and on filesystems without fallocate.
  virtual Status Reserve(std::span<const ByteRange> ranges) = 0;
  // Makes everything durable (fsync; BLKFLSBUF not needed).
  virtual Status Finish() = 0;
};

// Opens `path` for restoring an image of `image_size` bytes. A missing path is
// created as a regular file of that size; an existing file or device smaller
// than the image is kFailedPrecondition; a larger existing regular file is
// truncated to the image size (a larger device keeps its tail); a read-only
// target is kPermissionDenied; a mounted (busy) device kFailedPrecondition.
Result<std::unique_ptr<RestoreTarget>> OpenRestoreTarget(const std::string& path,
                                                         uint64_t image_size,
                                                         TargetOptions options = {});

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_DEVICE_H_
