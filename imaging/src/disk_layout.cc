// Disk layout of a snapshot (see disk_layout.h for the invariants).
#include "sparetime/imaging/disk_layout.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "sparetime/imaging/snapshot_reader.h"

namespace sparetime {
namespace {

uint64_t Le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint32_t Le32(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
void Put64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void Put32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}

class Window final : public RestoreTarget {
 public:
  Window(RestoreTarget& inner, uint64_t offset, uint64_t length, uint64_t image_size)
      : inner_(inner), offset_(offset), length_(length), image_size_(image_size) {}
  bool is_block_device() const override { return inner_.is_block_device(); }
  uint64_t size() const override { return image_size_; }
  Status WriteAt(uint64_t offset, std::span<const std::byte> data) override {
    auto [from, to] = Clip(offset, data.size());
    if (from >= to) return Status::Ok();
    return inner_.WriteAt(from - offset_, data.subspan(from - offset, to - from));
  }
  Status Hole(uint64_t offset, uint64_t len) override {
    auto [from, to] = Clip(offset, len);
    if (from >= to) return Status::Ok();
    return inner_.Hole(from - offset_, to - from);
  }
  Status Reserve(std::span<const ByteRange> ranges) override {
    std::vector<ByteRange> inside;
    for (const ByteRange& r : ranges) {
      auto [from, to] = Clip(r.offset, r.length);
      if (from < to) inside.push_back({from - offset_, to - from});
    }
    return inner_.Reserve(inside);
  }
  Status Finish() override { return inner_.Finish(); }

 private:
  std::pair<uint64_t, uint64_t> Clip(uint64_t offset, uint64_t len) const {
    return {std::max(offset, offset_), std::min(offset + len, offset_ + length_)};
  }
  RestoreTarget& inner_;
  const uint64_t offset_, length_, image_size_;
};

struct File {
  int fd = -1;
  ~File() {
    if (fd >= 0) close(fd);
  }
};

Status ReadExact(int fd, uint64_t offset, std::span<std::byte> out, const std::string& path) {
  if (pread(fd, out.data(), out.size(), static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(out.size())) {
    return IoError(path + ": cannot read " + std::to_string(out.size()) + " bytes at " +
                   std::to_string(offset));
  }
  return Status::Ok();
}
Status WriteExact(int fd, uint64_t offset, std::span<const std::byte> data, const std::string& path) {
  if (pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(data.size())) {
    return IoError(path + ": cannot write " + std::to_string(data.size()) + " bytes at " +
                   std::to_string(offset) + " (" + std::strerror(errno) + ")");
  }
  return Status::Ok();
}

}  // namespace

Result<PartitionTable> SnapshotPartitions(const Manifest& manifest, const Codec& codec,
                                          ChunkSource& source) {
  SnapshotReader reader(manifest, codec, source,
                        {.cache_bytes = 4ull * manifest.chunk_size, .readahead_chunks = 0,
                         .fetch_threads = 1, .on_damage = nullptr});
  return ReadPartitionTable(
      [&reader](uint64_t offset, std::span<std::byte> out) -> Status {
        ST_ASSIGN_OR_RETURN(size_t got, reader.ReadAt(offset, out));
        if (got != out.size()) return Corruption("read past the end of the image");
        return Status::Ok();
      },
      manifest.size);
}

Manifest WindowManifest(const Manifest& manifest, uint64_t offset, uint64_t length) {
  Manifest m = manifest;
  for (uint64_t i = 0; i < m.chunks.size(); ++i) {
    const uint64_t start = i * m.chunk_size, end = start + m.ChunkLength(i);
    if (end <= offset || start >= offset + length) m.chunks[i] = kHoleId;
  }
  return m;
}

std::unique_ptr<RestoreTarget> WindowTarget(RestoreTarget& inner, uint64_t offset,
                                            uint64_t length, uint64_t image_size) {
  return std::make_unique<Window>(inner, offset, length, image_size);
}

Result<bool> RelocateGpt(const std::string& path, uint64_t image_size) {
  File f;
  f.fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (f.fd < 0) return IoError(path + ": cannot open to fix its GPT (" + std::strerror(errno) + ")");
  const off_t end = lseek(f.fd, 0, SEEK_END);
  if (end < 0 || static_cast<uint64_t>(end) <= image_size) return false;
  const uint64_t size = static_cast<uint64_t>(end);
  for (uint64_t ss : {512u, 4096u}) {
    if (image_size % ss != 0 || image_size < 4 * ss) continue;
    std::vector<std::byte> hdr(ss);
    ST_RETURN_IF_ERROR(ReadExact(f.fd, ss, hdr, path));
    if (std::memcmp(hdr.data(), "EFI PART", 8) != 0) continue;
    const uint32_t hsize = Le32(&hdr[12]);
    if (hsize < 92 || hsize > ss) continue;
    std::vector<std::byte> check(hdr.begin(), hdr.begin() + hsize);
    Put32(&check[16], 0);
    if (Crc32(check) != Le32(&hdr[16])) continue;
    const uint64_t old_last = image_size / ss - 1;
    if (Le64(&hdr[24]) != 1 || Le64(&hdr[32]) != old_last) return false;  // not this image's end
    const uint64_t entries_lba = Le64(&hdr[72]);
    const uint64_t entries_bytes = uint64_t{Le32(&hdr[80])} * Le32(&hdr[84]);
    if (entries_bytes == 0 || entries_bytes > (1u << 20)) {
      return Corruption(path + ": the GPT lists " + std::to_string(entries_bytes) +
                        " bytes of entries; not moving its backup");
    }
    const uint64_t entry_sectors = (entries_bytes + ss - 1) / ss;
    std::vector<std::byte> entries(entry_sectors * ss);
    ST_RETURN_IF_ERROR(ReadExact(f.fd, entries_lba * ss, entries, path));
    if (Crc32(std::span(entries).first(entries_bytes)) != Le32(&hdr[88])) {
      return Corruption(path + ": the GPT entries fail their CRC32; not moving its backup");
    }
    const uint64_t new_last = size / ss - 1;
    const uint64_t backup_entries = new_last - entry_sectors;
    // Primary: the backup now lives at the new end; the usable area grows.
    Put64(&hdr[32], new_last);
    Put64(&hdr[48], backup_entries - 1);
    Put32(&hdr[16], 0);
    Put32(&hdr[16], Crc32(std::span(hdr).first(hsize)));
    // Backup: the same header with the LBAs swapped and its own entries.
    std::vector<std::byte> backup = hdr;
    Put64(&backup[24], new_last);
    Put64(&backup[32], 1);
    Put64(&backup[72], backup_entries);
    Put32(&backup[16], 0);
    Put32(&backup[16], Crc32(std::span(backup).first(hsize)));
    ST_RETURN_IF_ERROR(WriteExact(f.fd, backup_entries * ss, entries, path));
    ST_RETURN_IF_ERROR(WriteExact(f.fd, new_last * ss, backup, path));
    ST_RETURN_IF_ERROR(WriteExact(f.fd, ss, hdr, path));
    std::vector<std::byte> zero(ss);
    ST_RETURN_IF_ERROR(WriteExact(f.fd, old_last * ss, zero, path));  // the stale backup header
    // The protective MBR entry covers the disk (as far as 32 bits reach).
    std::vector<std::byte> mbr(512);
    ST_RETURN_IF_ERROR(ReadExact(f.fd, 0, mbr, path));
    if (static_cast<uint8_t>(mbr[446 + 4]) == 0xEE && Le32(&mbr[446 + 8]) == 1) {
      Put32(&mbr[446 + 12], static_cast<uint32_t>(std::min<uint64_t>(new_last, 0xffffffffu)));
      ST_RETURN_IF_ERROR(WriteExact(f.fd, 0, mbr, path));
    }
    if (fsync(f.fd) != 0) return IoError(path + ": fsync failed (" + std::strerror(errno) + ")");
    return true;
  }
  return false;
}

}  // namespace sparetime
