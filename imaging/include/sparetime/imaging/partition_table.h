// Partition tables: one reader for GPT and MBR (with extended/logical
// partitions), over any byte source — a snapshot image through the mount's
// reader, a live block device (issue 20), or a buffer in the fuzzer.
// Pure parsing: no I/O of its own, every read goes through `ReadFn`.
//
// Invariants:
//   - GPT wins over MBR: a disk whose MBR is protective (type 0xEE) or whose
//     LBA 1 holds a valid GPT header is read as GPT. The primary header is
//     used when its header CRC32 and entry-array CRC32 check; else the
//     backup header (last LBA); else kCorruption naming both failures.
//     Sector sizes 512 and 4096 are tried, in that order.
//   - MBR: the 0x55AA signature, boot flags 0x00/0x80 only (a filesystem
//     boot sector is not a table). Primaries are numbered 1-4 by slot,
//     logical partitions 5, 6, ... in chain order, as Linux numbers them.
//     The EBR chain is followed at most kMaxLogical links; a loop is
//     kCorruption.
//   - Every partition returned lies inside the disk, has a non-zero size,
//     and overlaps no other (kCorruption otherwise, naming the partition):
//     a caller may map each to its own byte range without checking again.
//   - Reads are bounded: at most 1 MiB of GPT entries, one sector per EBR.
//   - No table is not an error: scheme kNone, no partitions.
#ifndef SPARETIME_IMAGING_PARTITION_TABLE_H_
#define SPARETIME_IMAGING_PARTITION_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/status.h"

namespace sparetime {

struct Partition {
  uint32_t number = 0;  // as Linux numbers it: GPT entry index + 1; MBR 1-4, logical 5+
  uint64_t offset = 0;  // bytes from the start of the disk
  uint64_t size = 0;    // bytes
  std::string type;     // GPT: type GUID (lower-case, dashed); MBR: "0x83"
  std::string uuid;     // GPT: the partition's unique GUID; MBR: ""
  std::string name;     // GPT: the partition name (UTF-16LE, ASCII kept); MBR: ""
};

struct PartitionTable {
  enum class Scheme { kNone, kMbr, kGpt };
  Scheme scheme = Scheme::kNone;
  uint32_t sector_size = 512;
  std::string disk_uuid;  // GPT disk GUID; MBR: the 32-bit disk signature as 8 hex digits
  std::vector<Partition> partitions;  // by number
};

const char* SchemeName(PartitionTable::Scheme scheme);  // "none", "mbr", "gpt"

// Fills `out` with the disk's bytes at `offset`; a read past the end fails.
using PartitionReadFn = std::function<Status(uint64_t offset, std::span<std::byte> out)>;

inline constexpr uint32_t kMaxLogicalPartitions = 128;

// Reads the partition table of a disk of `disk_size` bytes. kCorruption for
// a table that is there but broken (the message names what and where).
Result<PartitionTable> ReadPartitionTable(const PartitionReadFn& read, uint64_t disk_size);

// The same over bytes in memory (the whole disk, or its first part: reads
// past `disk` fail with kCorruption). For tests and the fuzzer.
Result<PartitionTable> ParsePartitionTable(std::span<const std::byte> disk);

// CRC-32 (IEEE 802.3, reflected, as GPT uses it). Exposed for tests.
uint32_t Crc32(std::span<const std::byte> data);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PARTITION_TABLE_H_
