// TestChunkId, apart from the rest of testutil.cc: the one helper that needs
// the crypto library (ChunkId), so tests of base and scheduler link without it
// (tests/testutil/CMakeLists.txt: sparetime_testutil_crypto).
#include <span>
#include <vector>

#include "testutil/testutil.h"

namespace sparetime::testing {

ChunkId TestChunkId(uint64_t n) {
  std::vector<std::byte> b = RandomBytes(ChunkId::kSize, n * 7919 + 1);
  return ChunkId::FromBytes(std::span<const std::byte, ChunkId::kSize>(b.data(), ChunkId::kSize));
}

}  // namespace sparetime::testing
