// Pack file format: encoding records, reading one indexed record with its
// checks, and scanning a torn tail (see pack_file.h, docs/storage.md).
//
// Invariant: a record is trusted only when complete; a read that finds fewer
// bytes, another id or another hash than the index promised is corruption;
// nothing is allocated for a record the file cannot hold.
#include "pack_file.h"

#include <sodium.h>

#include <cstring>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"

namespace sparetime {

namespace {

constexpr char kPackMagic[16] = {'S', 'P', 'A', 'R', 'E', 'T', 'I',  'M',
                                 'E', '-', 'P', 'A', 'C', 'K', '\0', '\0'};

Status Damaged(const ChunkId& id, const RecordLocation& loc, std::string_view why) {
  return Corruption("pack " + loc.pack_path + " offset " + std::to_string(loc.offset) + ": chunk " +
                    id.hex() + " is damaged (" + std::string(why) + ")");
}

}  // namespace

BlobHash HashBlob(std::span<const std::byte> blob) {
  BlobHash h;
  crypto_generichash(reinterpret_cast<unsigned char*>(h.data()), h.size(),
                     reinterpret_cast<const unsigned char*>(blob.data()), blob.size(), nullptr, 0);
  return h;
}

std::array<std::byte, kPackHeaderSize> EncodePackHeader() {
  std::array<std::byte, kPackHeaderSize> h{};
  std::memcpy(h.data(), kPackMagic, sizeof kPackMagic);
  PutLe32(h.data() + sizeof kPackMagic, kPackVersion);
  return h;
}

std::vector<std::byte> EncodeRecord(const ChunkId& id, std::span<const std::byte> blob) {
  std::vector<std::byte> out;
  out.reserve(kRecordHeaderSize + blob.size());
  AppendLe32(out, kRecordMagic);
  AppendLe32(out, static_cast<uint32_t>(blob.size()));
  AppendBytes(out, id.bytes);
  AppendBytes(out, blob);
  return out;
}

Result<std::vector<std::byte>> ReadRecord(Env& env, int fd, const ChunkId& id,
                                          const RecordLocation& loc, BlobCheck check) {
  // The length comes from the index, which a damaged disk can change: check
  // it against the file before allocating (fuzz finding: a 4 GiB length
  // allocated 4 GiB).
  Result<uint64_t> file_size = env.FileSize(fd);
  if (!file_size.ok()) return file_size.error().WithContext("pack " + loc.pack_path + ": chunk " + id.hex());
  if (loc.offset > *file_size || *file_size - loc.offset < kRecordHeaderSize + uint64_t{loc.length}) {
    return Damaged(id, loc, "the pack file ends inside the record");
  }
  std::vector<std::byte> buf(kRecordHeaderSize + loc.length);
  Result<size_t> n = env.ReadAt(fd, buf, loc.offset);
  if (!n.ok()) return n.error().WithContext("pack " + loc.pack_path + ": chunk " + id.hex());
  if (*n < buf.size()) return Damaged(id, loc, "the pack file ends inside the record");
  if (GetLe32(buf.data()) != kRecordMagic || GetLe32(buf.data() + 4) != loc.length ||
      std::memcmp(buf.data() + 8, id.bytes.data(), ChunkId::kSize) != 0)
    return Damaged(id, loc, "record header does not match the index");
  std::span<const std::byte> blob(buf.data() + kRecordHeaderSize, loc.length);
  if (check == BlobCheck::kHash && HashBlob(blob) != loc.hash) {
    return Damaged(id, loc, "stored hash mismatch");
  }
  buf.erase(buf.begin(), buf.begin() + kRecordHeaderSize);
  return buf;
}

Result<PackScan> ScanPack(Env& env, int fd, const std::string& path, uint64_t start,
                          uint64_t file_size, uint32_t max_blob_bytes) {
  auto read_at = [&](std::span<std::byte> b, uint64_t off) -> Result<size_t> {
    Result<size_t> r = env.ReadAt(fd, b, off);
    if (!r.ok()) return r.error().WithContext("scanning pack " + path);
    return r;
  };
  PackScan scan;
  if (start < kPackHeaderSize) {
    std::array<std::byte, kPackHeaderSize> header;
    ST_ASSIGN_OR_RETURN(size_t n, read_at(header, 0));
    if (n < header.size() || header != EncodePackHeader()) return scan;  // torn from byte 0
    start = kPackHeaderSize;
  }
  uint64_t pos = start;
  std::vector<std::byte> buf;
  while (file_size - pos >= kRecordHeaderSize) {
    std::array<std::byte, kRecordHeaderSize> rh;
    ST_ASSIGN_OR_RETURN(size_t n, read_at(rh, pos));
    if (n < rh.size() || GetLe32(rh.data()) != kRecordMagic) break;
    const uint32_t length = GetLe32(rh.data() + 4);
    if (length > max_blob_bytes || file_size - pos - kRecordHeaderSize < length) break;
    buf.resize(length);
    ST_ASSIGN_OR_RETURN(n, read_at(buf, pos + kRecordHeaderSize));
    if (n < length) break;
    ScannedRecord rec;
    std::memcpy(rec.id.bytes.data(), rh.data() + 8, ChunkId::kSize);
    rec.offset = pos;
    rec.length = length;
    rec.hash = HashBlob(buf);
    scan.records.push_back(rec);
    pos += kRecordHeaderSize + length;
  }
  scan.valid_end = pos;
  return scan;
}

}  // namespace sparetime
