// Test helper for prune tests (local and on peers): every chunk a snapshot
// references — its manifest's own chunks and its data chunks.
#ifndef SPARETIME_TESTS_IMAGING_PRUNE_TESTING_H_
#define SPARETIME_TESTS_IMAGING_PRUNE_TESTING_H_

#include <gtest/gtest.h>

#include <unordered_set>

#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/manifest.h"

namespace sparetime::testing {

using IdSet = std::unordered_set<ChunkId, ChunkIdHash>;

inline IdSet ReferencedChunks(const Codec& codec, ChunkSource& source, const Snapshot& s) {
  IdSet ids;
  auto own = ManifestChunkIds(s.manifest_root, codec, source);
  EXPECT_TRUE(own.ok());
  if (own.ok()) ids.insert(own->begin(), own->end());
  auto m = LoadManifest(s.manifest_root, codec, source);
  EXPECT_TRUE(m.ok());
  if (m.ok()) ids.insert(m->chunks.begin(), m->chunks.end());
  return ids;
}

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_IMAGING_PRUNE_TESTING_H_
