// Device I/O: the read side (BlockDevice over a block device or image file)
// and the write side (RestoreTarget), plus the O_DIRECT-aligned buffer.
//
// Invariants: every fd is owned by an Fd and opened O_CLOEXEC; reads never go
// past the size fixed at open, writes never past the target's size; reads and
// writes are positional (pread/pwrite), so one object may serve many threads.
// With direct_io a second O_DIRECT descriptor serves aligned reads, and the
// buffered one everything else (unaligned tails, filesystems refusing
// O_DIRECT), so callers see the same bytes either way. Restore targets get
// the same pair: aligned chunk writes go O_DIRECT (staged through an aligned
// per-thread buffer when the caller's is not), the rest through the cache.
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/device_fds.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "device_sysfs.h"
#include "sparetime/base/fd.h"

namespace sparetime {

AlignedBuffer::AlignedBuffer(size_t size) : n_(size) {
  if (size == 0) return;
  size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
  p_ = static_cast<std::byte*>(std::aligned_alloc(kAlignment, rounded));
  if (p_ == nullptr) {
    std::fprintf(stderr, "sparetime: out of memory allocating a %zu-byte I/O buffer\n", rounded);
    std::abort();
  }
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    std::free(p_);
    p_ = o.p_;
    n_ = o.n_;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}

AlignedBuffer::~AlignedBuffer() { std::free(p_); }

namespace {

bool Aligned(uint64_t v, uint64_t a) { return v % a == 0; }

Status StatPath(const std::string& path, const std::string& role, struct stat& sb) {
  if (::stat(path.c_str(), &sb) == 0) return Status::Ok();
  int err = errno;
  if (err == ENOENT || err == ENOTDIR) return NotFound(role + " " + path + " does not exist");
  return ErrnoStatus("cannot access " + role + " " + path, err);
}

Result<uint64_t> BlockDeviceSize(int fd, const std::string& path) {
  uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0) return ErrnoStatus("BLKGETSIZE64 on " + path, errno);
  return size;
}

Result<uint32_t> LogicalBlockSize(int fd, const std::string& path) {
  int lbs = 0;
  if (::ioctl(fd, BLKSSZGET, &lbs) != 0) return ErrnoStatus("BLKSSZGET on " + path, errno);
  return static_cast<uint32_t>(lbs);
}

// What O_DIRECT on a block device aligns offsets, lengths and buffers to.
uint64_t BlockDirectAlignment(uint32_t logical_block_size) {
  return std::max<uint64_t>(logical_block_size, 512);
}

class DeviceReader final : public BlockDevice {
 public:
  DeviceReader(DeviceIdentity identity, Fd fd, Fd direct_fd, uint64_t direct_alignment)
      : identity_(std::move(identity)),
        fd_(std::move(fd)),
        direct_fd_(std::move(direct_fd)),
        direct_alignment_(direct_alignment) {}

  const DeviceIdentity& identity() const override { return identity_; }

  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) override {
    if (offset >= identity_.size) return size_t{0};
    buf = buf.first(std::min<uint64_t>(buf.size(), identity_.size - offset));
    if (direct_fd_.valid() && Aligned(offset, direct_alignment_) &&
        Aligned(buf.size(), direct_alignment_) &&
        Aligned(reinterpret_cast<uintptr_t>(buf.data()), direct_alignment_)) {
      Result<size_t> got = ReadFullAt(direct_fd_.get(), buf, offset);
      // EINVAL: the kernel refused this O_DIRECT read; buffered below.
      if (got.ok() || got.error().code() != ErrorCode::kInvalidArgument) {
        return Named(std::move(got));
      }
    }
    return Named(ReadFullAt(fd_.get(), buf, offset));
  }

  void DoneWith(uint64_t offset, uint64_t len) override {
    if (len == 0) return;  // len 0 would mean "to the end" to fadvise
    (void)::posix_fadvise(fd_.get(), static_cast<off_t>(offset), static_cast<off_t>(len),
                          POSIX_FADV_DONTNEED);
  }

  uint64_t NextDataOffset(uint64_t offset) override {
    if (identity_.kind != "file" || offset >= identity_.size) return offset;
    off_t data = ::lseek(fd_.get(), static_cast<off_t>(offset), SEEK_DATA);
    if (data >= 0) return std::min<uint64_t>(static_cast<uint64_t>(data), identity_.size);
    return errno == ENXIO ? identity_.size : offset;  // ENXIO: only a hole follows
  }

 private:
  Result<size_t> Named(Result<size_t> got) const {
    if (!got.ok()) return got.error().WithContext("reading device " + identity_.path);
    return got;
  }

  const DeviceIdentity identity_;
  Fd fd_;
  Fd direct_fd_;  // invalid unless direct_io was asked for and is supported
  const uint64_t direct_alignment_;
};

// Read-only open, with O_NOATIME when we own the file (or are root).
Result<Fd> OpenForReading(const std::string& path, int extra_flags) {
  Result<Fd> fd = OpenFile(path, O_RDONLY | O_NOATIME | extra_flags);
  if (!fd.ok() && fd.error().code() == ErrorCode::kPermissionDenied) {
    fd = OpenFile(path, O_RDONLY | extra_flags);  // EPERM: O_NOATIME not ours to use
  }
  if (!fd.ok() && fd.error().code() == ErrorCode::kPermissionDenied) {
    return PermissionDenied("cannot read " + path + ": " + fd.error().message() +
                            " (run as root or as a member of the disk group)");
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<BlockDevice>> OpenBlockDevice(const std::string& path,
                                                     DeviceOpenOptions options) {
  struct stat sb;
  ST_RETURN_IF_ERROR(StatPath(path, "device", sb));
  bool block = S_ISBLK(sb.st_mode);
  if (!block && !S_ISREG(sb.st_mode)) {
    return FailedPrecondition(
        path + (S_ISDIR(sb.st_mode) ? " is a directory" : " is not a block device or image file") +
        ": name a block device (/dev/...) or an image file");
  }
  ST_ASSIGN_OR_RETURN(Fd fd, OpenForReading(path, 0));
  Fd direct_fd;
  if (options.direct_io) {
    // EINVAL: the filesystem has no O_DIRECT (procfs, sysfs, old tmpfs);
    // every read then goes through the buffered descriptor.
    Result<Fd> d = OpenForReading(path, O_DIRECT);
    if (d.ok()) {
      direct_fd = std::move(*d);
    } else if (d.error().code() != ErrorCode::kInvalidArgument) {
      return d.error();
    }
  }
  return OpenBlockDeviceFds(path, std::move(fd), std::move(direct_fd));
}

Result<std::unique_ptr<BlockDevice>> OpenBlockDeviceFds(const std::string& path, Fd fd,
                                                        Fd direct_fd) {
  struct stat sb;
  if (::fstat(fd.get(), &sb) != 0) return ErrnoStatus("fstat " + path, errno);
  bool block = S_ISBLK(sb.st_mode);
  if (!block && !S_ISREG(sb.st_mode)) {
    return FailedPrecondition(path + " is not a block device or image file: name a block "
                              "device (/dev/...) or an image file");
  }
  DeviceIdentity id;
  id.path = path;
  id.kind = block ? "block" : "file";
  if (block) {
    ST_ASSIGN_OR_RETURN(id.size, BlockDeviceSize(fd.get(), path));
    ST_ASSIGN_OR_RETURN(id.logical_block_size, LogicalBlockSize(fd.get(), path));
    detail::ApplySysfsIdentity(detail::ReadSysfsIdentity(sb.st_rdev, detail::kSysfsRoot), id);
  } else {
    id.size = static_cast<uint64_t>(sb.st_size);
    // The key of an image file is its canonical path (device.h).
    std::error_code ec;
    std::filesystem::path real = std::filesystem::canonical(path, ec);
    id.real_path = ec ? path : real.string();
  }
  std::vector<std::byte> head(detail::kSuperblockProbeSize);
  Result<size_t> got = ReadFullAt(fd.get(), head, 0);
  if (got.ok()) id.fs_uuid = detail::FsUuidFromSuperblock(std::span(head).first(*got));

  (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  uint64_t alignment = block ? BlockDirectAlignment(id.logical_block_size)
                             : uint64_t{AlignedBuffer::kAlignment};
  return std::unique_ptr<BlockDevice>(
      new DeviceReader(std::move(id), std::move(fd), std::move(direct_fd), alignment));
}

namespace {

constexpr size_t kZeroBufferSize = 1 << 20;
constexpr uint64_t kSectorSize = 512;

class TargetWriter final : public RestoreTarget {
 public:
  struct Params {
    std::string path;
    Fd fd;
    bool block = false;
    uint64_t size = 0;
    bool fresh = false;       // created by us: already all holes
    bool zero_holes = false;  // block devices only
    Fd direct_fd;             // O_DIRECT writes; invalid when unsupported
    uint64_t direct_alignment = AlignedBuffer::kAlignment;
  };
  explicit TargetWriter(Params p) : p_(std::move(p)) {}

  bool is_block_device() const override { return p_.block; }
  uint64_t size() const override { return p_.size; }

  Status WriteAt(uint64_t offset, std::span<const std::byte> data) override {
    ST_RETURN_IF_ERROR(CheckRange(offset, data.size()));
    if (p_.direct_fd.valid() && Aligned(offset, p_.direct_alignment) &&
        Aligned(data.size(), p_.direct_alignment)) {
      Status st = WriteFullAt(p_.direct_fd.get(), Staged(data), offset);
      // EINVAL: the kernel refused this O_DIRECT write; buffered below.
      if (st.code() != ErrorCode::kInvalidArgument) {
        return st.ok() ? st : st.WithContext("writing target " + p_.path);
      }
    }
    Status st = WriteFullAt(p_.fd.get(), data, offset);
    if (!st.ok()) return st.WithContext("writing target " + p_.path);
    // Start writeback now so that it overlaps with fetching and decoding the
    // next chunks, and Finish()'s fsync has little left to do.
    (void)::sync_file_range(p_.fd.get(), static_cast<off_t>(offset),
                            static_cast<off_t>(data.size()), SYNC_FILE_RANGE_WRITE);
    return st;
  }

  Status Hole(uint64_t offset, uint64_t len) override {
    ST_RETURN_IF_ERROR(CheckRange(offset, len));
    if (len == 0 || p_.fresh) return Status::Ok();
    if (p_.block) return p_.zero_holes ? ZeroOut(offset, len) : Status::Ok();
    if (::fallocate(p_.fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(offset), static_cast<off_t>(len)) == 0) {
      return Status::Ok();
    }
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
      return ErrnoStatus(
          "punching a hole in target " + p_.path + " at offset " + std::to_string(offset), errno);
    }
    return WriteZeros(offset, len);
  }

  Status Reserve(std::span<const ByteRange> ranges) override {
    if (p_.block) return Status::Ok();
    for (const ByteRange& r : ranges) {
      ST_RETURN_IF_ERROR(CheckRange(r.offset, r.length));
      if (r.length == 0 || ::fallocate(p_.fd.get(), 0, static_cast<off_t>(r.offset),
                                       static_cast<off_t>(r.length)) == 0) {
        continue;
      }
      int err = errno;
      if (err == EOPNOTSUPP || err == ENOSYS) return Status::Ok();  // blocks come as writes land
      if (err != ENOSPC && err != EDQUOT) {
        return ErrnoStatus("reserving room in target " + p_.path, err);
      }
      // Give back what was reserved: nothing is written yet, the new file is all holes.
      if (p_.fresh) {
        (void)!::ftruncate(p_.fd.get(), 0);
        (void)!::ftruncate(p_.fd.get(), static_cast<off_t>(p_.size));
      }
      return NoSpace("no room for the image's data in target " + p_.path + " (" +
                     std::strerror(err) + "); free space on its filesystem or restore elsewhere");
    }
    return Status::Ok();
  }

  Status Finish() override {
    ST_RETURN_IF_ERROR(Fsync(p_.fd.get(), "target " + p_.path));
    if (p_.fresh) {
      // The new file's directory entry must be durable too.
      auto slash = p_.path.rfind('/');
      std::string dir =
          slash == std::string::npos ? "." : p_.path.substr(0, std::max<size_t>(slash, 1));
      ST_RETURN_IF_ERROR(FsyncDir(dir));
    }
    return Status::Ok();
  }

 private:
  // `data` itself when its address suits O_DIRECT, else a copy of it in this
  // thread's aligned staging buffer.
  std::span<const std::byte> Staged(std::span<const std::byte> data) const {
    if (Aligned(reinterpret_cast<uintptr_t>(data.data()), p_.direct_alignment)) return data;
    thread_local std::optional<AlignedBuffer> staging;
    if (!staging || staging->size() < data.size()) staging.emplace(data.size());
    std::memcpy(staging->data(), data.data(), data.size());
    return staging->span().first(data.size());
  }

  Status CheckRange(uint64_t offset, uint64_t len) const {
    if (offset > p_.size || len > p_.size - offset) {
      return InvalidArgument("range of " + std::to_string(len) + " bytes at offset " +
                             std::to_string(offset) + " is past the end of target " + p_.path +
                             " (" + std::to_string(p_.size) + " bytes)");
    }
    return Status::Ok();
  }

  // BLKZEROOUT lets the device zero without us moving the bytes (and may
  // unmap); unaligned ranges and devices without support get written zeroes.
  Status ZeroOut(uint64_t offset, uint64_t len) {
    if (Aligned(offset, kSectorSize) && Aligned(len, kSectorSize)) {
      uint64_t range[2] = {offset, len};
      if (::ioctl(p_.fd.get(), BLKZEROOUT, range) == 0) return Status::Ok();
      if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOTTY) {
        return ErrnoStatus("zeroing target " + p_.path + " at offset " + std::to_string(offset),
                           errno);
      }
    }
    return WriteZeros(offset, len);
  }

  Status WriteZeros(uint64_t offset, uint64_t len) {
    static const std::vector<std::byte> zeros(kZeroBufferSize);
    while (len > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, zeros.size()));
      Status st = WriteFullAt(p_.fd.get(), std::span(zeros).first(n), offset);
      if (!st.ok()) return st.WithContext("writing zeroes to target " + p_.path);
      offset += n;
      len -= n;
    }
    return Status::Ok();
  }

  Params p_;
};

std::string SizeMismatch(const std::string& path, uint64_t have, uint64_t want) {
  return "target " + path + " is " + std::to_string(have) + " bytes, smaller than the image (" +
         std::to_string(want) + " bytes); restore to a larger device or to a new file";
}

Result<TargetWriter::Params> CreateTargetFile(const std::string& path, uint64_t image_size) {
  Result<Fd> fd = OpenFile(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (!fd.ok()) return fd.error().WithContext("creating restore target");
  if (::ftruncate(fd->get(), static_cast<off_t>(image_size)) != 0) {
    Status st = ErrnoStatus(
        "sizing new target " + path + " to " + std::to_string(image_size) + " bytes", errno);
    ::unlink(path.c_str());
    return st;
  }
  TargetWriter::Params p;
  p.path = path;
  p.fd = std::move(*fd);
  p.size = image_size;
  p.fresh = true;
  return p;
}

// O_RDWR open with the failures a user can act on spelled out.
Result<Fd> OpenTargetRw(const std::string& path, int extra_flags) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | extra_flags);
  } while (fd < 0 && errno == EINTR);
  if (fd >= 0) return Fd(fd);
  int err = errno;
  if (err == EACCES || err == EPERM || err == EROFS) {
    return PermissionDenied("target " + path + " is read-only (" + std::strerror(err) +
                            "); make it writable or choose another target");
  }
  if (err == EBUSY) {
    return FailedPrecondition("target " + path +
                              " is in use (mounted, or held by LVM, RAID or another program); "
                              "unmount or release it first");
  }
  return ErrnoStatus("opening restore target " + path, err);
}

}  // namespace

Result<std::unique_ptr<RestoreTarget>> OpenRestoreTarget(const std::string& path,
                                                         uint64_t image_size,
                                                         TargetOptions options) {
  struct stat sb;
  TargetWriter::Params p;
  if (::stat(path.c_str(), &sb) != 0) {
    if (errno != ENOENT) return ErrnoStatus("cannot access target " + path, errno);
    ST_ASSIGN_OR_RETURN(p, CreateTargetFile(path, image_size));
  } else if (S_ISREG(sb.st_mode)) {
    ST_ASSIGN_OR_RETURN(p.fd, OpenTargetRw(path, 0));
    if (::fstat(p.fd.get(), &sb) != 0) return ErrnoStatus("fstat " + path, errno);
    uint64_t have = static_cast<uint64_t>(sb.st_size);
    if (have < image_size) return FailedPrecondition(SizeMismatch(path, have, image_size));
    // A restored image file must equal the original, so drop any excess.
    if (have > image_size && ::ftruncate(p.fd.get(), static_cast<off_t>(image_size)) != 0) {
      return ErrnoStatus("truncating target " + path + " to the image size", errno);
    }
    p.size = image_size;
  } else if (S_ISBLK(sb.st_mode)) {
    // O_EXCL on a block device: refuse one that is mounted or otherwise claimed.
    ST_ASSIGN_OR_RETURN(p.fd, OpenTargetRw(path, O_EXCL));
    p.block = true;
    int ro = 0;
    if (::ioctl(p.fd.get(), BLKROGET, &ro) != 0) return ErrnoStatus("BLKROGET on " + path, errno);
    if (ro != 0) {
      return PermissionDenied("target " + path +
                              " is read-only; make it writable (blockdev --setrw) or choose "
                              "another target");
    }
    ST_ASSIGN_OR_RETURN(p.size, BlockDeviceSize(p.fd.get(), path));
    if (p.size < image_size) return FailedPrecondition(SizeMismatch(path, p.size, image_size));
    p.zero_holes = options.zero_holes;
  } else {
    return FailedPrecondition("target " + path +
                              (S_ISDIR(sb.st_mode) ? " is a directory"
                                                   : " is not a block device or regular file") +
                              ": name a block device or a file (a missing file is created)");
  }
  p.path = path;
  if (!options.direct_io) return std::unique_ptr<RestoreTarget>(new TargetWriter(std::move(p)));
  // A second description of the same file, O_DIRECT (no O_EXCL: ours is the
  // claim). Filesystems without O_DIRECT refuse it; all writes are buffered then.
  Result<Fd> direct = OpenFile("/proc/self/fd/" + std::to_string(p.fd.get()), O_WRONLY | O_DIRECT);
  if (direct.ok()) p.direct_fd = std::move(*direct);
  if (p.block) {
    Result<uint32_t> lbs = LogicalBlockSize(p.fd.get(), path);
    if (lbs.ok()) p.direct_alignment = BlockDirectAlignment(*lbs);
  }
  return std::unique_ptr<RestoreTarget>(new TargetWriter(std::move(p)));
}

}  // namespace sparetime
