// GPT and MBR reader (see partition_table.h). Byte layouts: UEFI 2.10
// section 5.3 (GPT header and entries, little-endian), and the classic MBR
// (four 16-byte entries at 446, signature 0x55AA at 510; extended
// partitions as a chain of EBRs whose second entry points to the next EBR
// relative to the start of the extended partition).
#include "sparetime/imaging/partition_table.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <set>

namespace sparetime {
namespace {

constexpr uint64_t kMaxGptEntryBytes = 1u << 20;

uint16_t Le16(const std::byte* p) {
  return static_cast<uint16_t>(std::to_integer<uint16_t>(p[0]) |
                               (std::to_integer<uint16_t>(p[1]) << 8));
}
uint32_t Le32(const std::byte* p) { return Le16(p) | (static_cast<uint32_t>(Le16(p + 2)) << 16); }
uint64_t Le64(const std::byte* p) { return Le32(p) | (static_cast<uint64_t>(Le32(p + 4)) << 32); }

std::string Hex(const std::byte* p, size_t n) {
  std::string out;
  char buf[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", std::to_integer<unsigned>(p[i]));
    out += buf;
  }
  return out;
}

// A GUID as text: the first three fields are little-endian.
std::string Guid(const std::byte* p) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-", Le32(p), Le16(p + 4), Le16(p + 6));
  return buf + Hex(p + 8, 2) + "-" + Hex(p + 10, 6);
}

bool AllZero(const std::byte* p, size_t n) {
  return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
}

// The ASCII part of a UTF-16LE name of at most 36 code units ('?' for the rest).
std::string Utf16Name(const std::byte* p) {
  std::string out;
  for (int i = 0; i < 36; ++i) {
    uint16_t c = Le16(p + 2 * i);
    if (c == 0) break;
    out += c < 0x80 && c >= 0x20 ? static_cast<char>(c) : '?';
  }
  return out;
}

std::string Where(uint64_t offset) { return "at byte " + std::to_string(offset); }

// Checks the invariants every returned partition keeps, then sorts by number.
Status CheckLayout(PartitionTable& table, uint64_t disk_size) {
  const char* scheme = SchemeName(table.scheme);
  for (const Partition& p : table.partitions) {
    if (p.size == 0 || p.offset > disk_size || p.size > disk_size - p.offset) {
      return Corruption(std::string(scheme) + " partition " + std::to_string(p.number) +
                        " (bytes " + std::to_string(p.offset) + " + " + std::to_string(p.size) +
                        ") does not lie inside the disk of " + std::to_string(disk_size) +
                        " bytes");
    }
  }
  std::vector<const Partition*> by_offset;
  for (const Partition& p : table.partitions) by_offset.push_back(&p);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Partition* a, const Partition* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const Partition& a = *by_offset[i - 1];
    const Partition& b = *by_offset[i];
    if (a.offset + a.size > b.offset) {
      return Corruption(std::string(scheme) + " partitions " + std::to_string(a.number) +
                        " and " + std::to_string(b.number) + " overlap");
    }
  }
  std::sort(table.partitions.begin(), table.partitions.end(),
            [](const Partition& a, const Partition& b) { return a.number < b.number; });
  return Status::Ok();
}

// ---- GPT ----

struct GptHeader {
  uint64_t my_lba, alternate_lba, entry_lba;
  uint32_t entries, entry_size;
  uint32_t entries_crc;
  std::string disk_guid;
};

Result<GptHeader> ReadGptHeader(const PartitionReadFn& read, uint64_t lba, uint32_t sector,
                                uint64_t disk_size) {
  const uint64_t offset = lba * sector;
  if (offset + sector > disk_size) return Corruption("GPT header " + Where(offset) + " is past the end");
  std::vector<std::byte> buf(sector);
  ST_RETURN_IF_ERROR(read(offset, buf));
  if (std::memcmp(buf.data(), "EFI PART", 8) != 0) {
    return NotFound("no GPT header " + Where(offset));
  }
  uint32_t header_size = Le32(&buf[12]);
  if (header_size < 92 || header_size > sector) {
    return Corruption("GPT header " + Where(offset) + " has size " + std::to_string(header_size));
  }
  uint32_t crc = Le32(&buf[16]);
  std::memset(&buf[16], 0, 4);
  if (Crc32(std::span<const std::byte>(buf).first(header_size)) != crc) {
    return Corruption("GPT header " + Where(offset) + " fails its CRC32");
  }
  GptHeader h{.my_lba = Le64(&buf[24]),
              .alternate_lba = Le64(&buf[32]),
              .entry_lba = Le64(&buf[72]),
              .entries = Le32(&buf[80]),
              .entry_size = Le32(&buf[84]),
              .entries_crc = Le32(&buf[88]),
              .disk_guid = Guid(&buf[56])};
  if (h.my_lba != lba) {
    return Corruption("GPT header " + Where(offset) + " says it is at LBA " +
                      std::to_string(h.my_lba));
  }
  if (h.entry_size < 128 || h.entry_size % 8 != 0 ||
      uint64_t{h.entries} * h.entry_size > kMaxGptEntryBytes) {
    return Corruption("GPT header " + Where(offset) + ": " + std::to_string(h.entries) +
                      " entries of " + std::to_string(h.entry_size) + " bytes");
  }
  return h;
}

Result<PartitionTable> ReadGptAt(const PartitionReadFn& read, const GptHeader& h, uint32_t sector,
                                 uint64_t disk_size) {
  const uint64_t bytes = uint64_t{h.entries} * h.entry_size;
  if (h.entry_lba > disk_size / sector || bytes > disk_size - h.entry_lba * sector) {
    return Corruption("GPT entry array at LBA " + std::to_string(h.entry_lba) +
                      " is past the end of the disk");
  }
  std::vector<std::byte> entries(bytes);
  ST_RETURN_IF_ERROR(read(h.entry_lba * sector, entries));
  if (Crc32(entries) != h.entries_crc) {
    return Corruption("GPT entry array at LBA " + std::to_string(h.entry_lba) +
                      " fails its CRC32");
  }
  PartitionTable table;
  table.scheme = PartitionTable::Scheme::kGpt;
  table.sector_size = sector;
  table.disk_uuid = h.disk_guid;
  for (uint32_t i = 0; i < h.entries; ++i) {
    const std::byte* e = &entries[uint64_t{i} * h.entry_size];
    if (AllZero(e, 16)) continue;  // unused entry
    uint64_t first = Le64(e + 32), last = Le64(e + 40);
    if (last < first) {
      return Corruption("GPT partition " + std::to_string(i + 1) + " ends (LBA " +
                        std::to_string(last) + ") before it starts (LBA " +
                        std::to_string(first) + ")");
    }
    if (first > disk_size / sector) first = disk_size / sector + 1;  // CheckLayout refuses it
    uint64_t count = last - first + 1;
    Partition p{.number = i + 1,
                .offset = first * sector,
                .size = count > disk_size / sector ? disk_size + 1 : count * sector,
                .type = Guid(e),
                .uuid = Guid(e + 16),
                .name = Utf16Name(e + 56)};
    table.partitions.push_back(std::move(p));
  }
  ST_RETURN_IF_ERROR(CheckLayout(table, disk_size));
  return table;
}

// The GPT at `sector`: primary, else backup. NotFound when neither header is there.
Result<PartitionTable> ReadGpt(const PartitionReadFn& read, uint32_t sector, uint64_t disk_size) {
  if (disk_size < 3ull * sector) return NotFound("disk too small for GPT");
  Status primary_error;
  Result<GptHeader> primary = ReadGptHeader(read, 1, sector, disk_size);
  if (primary.ok()) {
    Result<PartitionTable> t = ReadGptAt(read, *primary, sector, disk_size);
    if (t.ok()) return t;
    primary_error = t.status();
  } else {
    primary_error = primary.status();
  }
  const uint64_t last_lba = disk_size / sector - 1;
  uint64_t backup_lba =
      primary.ok() && primary->alternate_lba <= last_lba ? primary->alternate_lba : last_lba;
  Result<GptHeader> backup = ReadGptHeader(read, backup_lba, sector, disk_size);
  if (backup.ok()) {
    Result<PartitionTable> t = ReadGptAt(read, *backup, sector, disk_size);
    if (t.ok()) return t;
    backup = t.status();
  }
  if (primary_error.code() == ErrorCode::kNotFound &&
      backup.status().code() == ErrorCode::kNotFound) {
    return primary_error;
  }
  return Corruption("GPT unreadable: primary: " + primary_error.message() +
                    "; backup: " + backup.status().message());
}

// ---- MBR ----

struct MbrEntry {
  uint8_t status, type;
  uint32_t start, sectors;
};

MbrEntry ParseEntry(const std::byte* e) {
  return {std::to_integer<uint8_t>(e[0]), std::to_integer<uint8_t>(e[4]), Le32(e + 8),
          Le32(e + 12)};
}

bool IsExtended(uint8_t type) { return type == 0x05 || type == 0x0f || type == 0x85; }

std::string TypeText(uint8_t type) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", type);
  return buf;
}

Status ReadLogicals(const PartitionReadFn& read, uint64_t ext_start, uint64_t disk_size,
                    PartitionTable& table) {
  constexpr uint64_t kSector = 512;
  std::set<uint64_t> seen;
  uint64_t ebr = ext_start;
  uint32_t number = 5;
  std::array<std::byte, kSector> buf;
  for (;;) {
    if (!seen.insert(ebr).second) {
      return Corruption("MBR extended partition: the EBR chain loops back to " + Where(ebr * kSector));
    }
    if (seen.size() > kMaxLogicalPartitions) {
      return Corruption("MBR extended partition: more than " +
                        std::to_string(kMaxLogicalPartitions) + " logical partitions");
    }
    if ((ebr + 1) * kSector > disk_size) {
      return Corruption("MBR extended partition: EBR " + Where(ebr * kSector) +
                        " is past the end of the disk");
    }
    ST_RETURN_IF_ERROR(read(ebr * kSector, buf));
    if (buf[510] != std::byte{0x55} || buf[511] != std::byte{0xAA}) {
      return Corruption("MBR extended partition: EBR " + Where(ebr * kSector) +
                        " has no 0x55AA signature");
    }
    MbrEntry part = ParseEntry(&buf[446]);
    MbrEntry next = ParseEntry(&buf[462]);
    if (part.type != 0 && part.sectors != 0) {
      table.partitions.push_back({.number = number,
                                  .offset = (ebr + part.start) * kSector,
                                  .size = uint64_t{part.sectors} * kSector,
                                  .type = TypeText(part.type),
                                  .uuid = "",
                                  .name = ""});
    }
    ++number;
    if (next.type == 0 || next.start == 0) return Status::Ok();
    ebr = ext_start + next.start;
  }
}

Result<PartitionTable> ReadMbr(std::span<const std::byte> sector0, const PartitionReadFn& read,
                               uint64_t disk_size) {
  PartitionTable table;
  table.scheme = PartitionTable::Scheme::kMbr;
  char sig[9];
  std::snprintf(sig, sizeof sig, "%08x", Le32(&sector0[440]));
  table.disk_uuid = sig;
  bool extended_seen = false;
  for (uint32_t slot = 0; slot < 4; ++slot) {
    MbrEntry e = ParseEntry(&sector0[446 + 16 * slot]);
    if (e.type == 0 || e.sectors == 0) continue;
    if (IsExtended(e.type)) {
      if (extended_seen) return Corruption("MBR has two extended partitions");
      extended_seen = true;
      ST_RETURN_IF_ERROR(ReadLogicals(read, e.start, disk_size, table));
      continue;
    }
    table.partitions.push_back({.number = slot + 1,
                                .offset = uint64_t{e.start} * 512,
                                .size = uint64_t{e.sectors} * 512,
                                .type = TypeText(e.type),
                                .uuid = "",
                                .name = ""});
  }
  ST_RETURN_IF_ERROR(CheckLayout(table, disk_size));
  return table;
}

}  // namespace

const char* SchemeName(PartitionTable::Scheme scheme) {
  switch (scheme) {
    case PartitionTable::Scheme::kMbr:
      return "mbr";
    case PartitionTable::Scheme::kGpt:
      return "gpt";
    case PartitionTable::Scheme::kNone:
      break;
  }
  return "none";
}

uint32_t Crc32(std::span<const std::byte> data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (std::byte b : data) crc = table[(crc ^ std::to_integer<uint32_t>(b)) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

Result<PartitionTable> ReadPartitionTable(const PartitionReadFn& read, uint64_t disk_size) {
  if (disk_size < 512) return PartitionTable{};
  std::array<std::byte, 512> sector0;
  ST_RETURN_IF_ERROR(read(0, sector0));
  const bool signature = sector0[510] == std::byte{0x55} && sector0[511] == std::byte{0xAA};
  bool protective = false;
  bool plausible_mbr = signature;
  for (int slot = 0; slot < 4 && signature; ++slot) {
    MbrEntry e = ParseEntry(&sector0[446 + 16 * slot]);
    if (e.type == 0xEE) protective = true;
    if (e.status != 0x00 && e.status != 0x80) plausible_mbr = false;
  }
  // GPT: a protective MBR, or a GPT header found anyway (a hybrid MBR or a
  // wiped sector 0); 512-byte then 4096-byte sectors.
  for (uint32_t sector : {512u, 4096u}) {
    Result<PartitionTable> gpt = ReadGpt(read, sector, disk_size);
    if (gpt.ok() || gpt.status().code() != ErrorCode::kNotFound) return gpt;
  }
  if (protective) {
    return Corruption("the MBR is protective (type 0xee) but no GPT header was found");
  }
  if (!plausible_mbr) return PartitionTable{};
  return ReadMbr(sector0, read, disk_size);
}

Result<PartitionTable> ParsePartitionTable(std::span<const std::byte> disk) {
  auto read = [disk](uint64_t offset, std::span<std::byte> out) -> Status {
    if (offset > disk.size() || out.size() > disk.size() - offset) {
      return Corruption("read of " + std::to_string(out.size()) + " bytes " + Where(offset) +
                        " is past the end of the data");
    }
    std::memcpy(out.data(), disk.data() + offset, out.size());
    return Status::Ok();
  };
  return ReadPartitionTable(read, disk.size());
}

}  // namespace sparetime
