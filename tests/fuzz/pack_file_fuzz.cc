// libFuzzer target: pack files (imaging/src/pack_file.h), read back from a
// disk that may be damaged. The input is the file: the first 12 bytes are
// where the index says a record is (u64 offset, u32 length; little-endian) —
// index rows are on the same disk — and the rest is the pack. ScanPack (the
// recovery scan on Open) runs from the header and from the claimed offset;
// every record it accepts must read back through ReadRecord with its hash
// (else __builtin_trap); ReadRecord at the claimed place must fail cleanly
// when the bytes do not match.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "pack_file.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/env.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparetime;
  if (size < 12) return 0;
  std::span<const std::byte> in = fuzz::Bytes(data, size);
  const uint64_t claimed_offset = GetLe64(in.data());
  const uint32_t claimed_length = GetLe32(in.data() + 8);
  std::span<const std::byte> pack = in.subspan(12);
  Fd fd = fuzz::MemFile(pack);
  Env& env = *Env::Default();
  constexpr uint32_t kMaxBlob = 1u << 20;
  for (uint64_t start : {uint64_t{0}, claimed_offset}) {
    Result<PackScan> scan = ScanPack(env, fd.get(), "fuzz.pack", start, pack.size(), kMaxBlob);
    if (!scan.ok()) continue;
    for (const ScannedRecord& r : scan->records) {
      RecordLocation loc{"fuzz.pack", r.offset, r.length, r.hash};
      if (!ReadRecord(env, fd.get(), r.id, loc).ok()) __builtin_trap();
    }
  }
  RecordLocation loc{"fuzz.pack", claimed_offset, claimed_length, {}};
  ChunkId id;
  if (pack.size() >= 40) std::memcpy(id.bytes.data(), pack.data() + 8, ChunkId::kSize);
  ReadRecord(env, fd.get(), id, loc, BlobCheck::kHeaderOnly).status().IgnoreError();
  return 0;
}
