// libFuzzer target for imaging/partition_table: the input is the start of a
// disk (reads past it fail, as on a short disk). Checked on every table the
// parser accepts, so a bug that returns garbage is a finding too
// (__builtin_trap): every partition lies inside the input, has a size, and
// no two overlap; numbers are unique. Built and run by scripts/fuzz.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sparetime/imaging/partition_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> disk(reinterpret_cast<const std::byte*>(data), size);
  sparetime::Result<sparetime::PartitionTable> t = sparetime::ParsePartitionTable(disk);
  if (!t.ok()) return 0;
  std::vector<const sparetime::Partition*> parts;
  for (const sparetime::Partition& p : t->partitions) {
    if (p.size == 0 || p.offset > size || p.size > size - p.offset) __builtin_trap();
    parts.push_back(&p);
  }
  std::sort(parts.begin(), parts.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i - 1]->offset + parts[i - 1]->size > parts[i]->offset) __builtin_trap();
  }
  for (size_t i = 1; i < t->partitions.size(); ++i) {
    if (t->partitions[i - 1].number >= t->partitions[i].number) __builtin_trap();
  }
  return 0;
}
