// Pack files: the on-disk format of the PackStore's append-only packs
// (docs/storage.md), and the two ways of reading one — checking a single
// indexed record (Get, Scrub) and scanning a tail for complete records
// (recovery on Open).
//
//   file header  16 bytes "SPARETIME-PACK\0\0", u32 version (1)
//   record       u32 magic "SPK1", u32 blob length, 32-byte chunk id, blob
// All integers are little-endian.
#ifndef SPARETIME_IMAGING_PACK_FILE_H_
#define SPARETIME_IMAGING_PACK_FILE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/chunk_store.h"

namespace sparetime {

inline constexpr size_t kPackHeaderSize = 20;
inline constexpr uint32_t kPackVersion = 1;
inline constexpr uint32_t kRecordMagic = 0x314B5053;  // bytes "SPK1"
inline constexpr size_t kRecordHeaderSize = 40;

std::array<std::byte, kPackHeaderSize> EncodePackHeader();
// Record header + blob, ready for one write.
std::vector<std::byte> EncodeRecord(const ChunkId& id, std::span<const std::byte> blob);

// Where a record lives and what the index says about it.
struct RecordLocation {
  std::string pack_path;
  uint64_t offset = 0;
  uint32_t length = 0;
  BlobHash hash{};
};

// Whether a read checks the blob against its stored hash (the header is
// always checked).
enum class BlobCheck { kHash, kHeaderOnly };

// Reads the record for `id` at `loc` from the open pack `fd` and checks its
// header against the index and (kHash) its blob against the stored hash.
// Damage is kCorruption "pack <path> offset <n>: chunk <id> is damaged (...)".
Result<std::vector<std::byte>> ReadRecord(Env& env, int fd, const ChunkId& id,
                                          const RecordLocation& loc,
                                          BlobCheck check = BlobCheck::kHash);

struct ScannedRecord {
  ChunkId id;
  uint64_t offset = 0;
  uint32_t length = 0;
  BlobHash hash{};
};

struct PackScan {
  std::vector<ScannedRecord> records;  // complete, well-formed records in order
  uint64_t valid_end = 0;              // where they end; everything after is torn
};

// Scans `fd` (of `file_size` bytes) from `start` for complete records. When
// `start` lies inside the file header, the header is checked first and a
// missing or wrong header makes the whole file torn (valid_end 0). A record
// is accepted only with the right magic, a length of at most
// `max_blob_bytes` and all of its bytes present; the first one that fails
// ends the scan.
Result<PackScan> ScanPack(Env& env, int fd, const std::string& path, uint64_t start, uint64_t file_size,
                          uint32_t max_blob_bytes);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PACK_FILE_H_
