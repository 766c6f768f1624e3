// Devices: what the imager reads and the restorer writes.
//
// BlockDevice reads a regular file or a block device: size via BLKGETSIZE64
// (st_size for files), logical block size via BLKSSZGET, and an identity
// (size plus serial / WWID / loop backing file / filesystem UUID where the
// kernel exposes them, so snapshots of the same disk are grouped even when its
// /dev name changes). Reads are positional and may run in parallel; with
// direct_io the device is opened O_DIRECT and callers pass buffers aligned to
// AlignedBuffer's alignment. posix_fadvise(NOREUSE/DONTNEED) keeps a backup
// from flushing the page cache.
//
// RestoreTarget writes an image: to a regular file (created at the image size,
// holes punched so they stay holes) or to a block device (never smaller than
// the image; holes written as zeroes only when asked).
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
  std::string serial;     // /sys/block/X/device/serial, when present
  std::string wwid;       // /sys/block/X/device/wwid or /sys/block/X/wwid
  std::string backing_file;  // loop devices: /sys/block/loopN/loop/backing_file
  std::string fs_uuid;    // filesystem UUID read from an ext2/3/4 or XFS superblock

  // A stable key for "the same disk": the strongest identity available
  // (wwid, serial, fs uuid, backing file, then path) plus the size.
  std::string Key() const;
  nlohmann::json ToJson() const;
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
