// libFuzzer target: snapshot manifests (imaging/manifest.h). A manifest is
// sealed, so what a damaged disk or a hostile peer sends fails the AEAD; the
// parser behind it still must not trust the plaintext (a bug or an old
// version wrote it). The input is plaintext: the root, then the pieces, cut
// at "|PIECE|". The harness seals each part under a fixed key and writes the
// pieces' ids into the root's piece-id slots (where the root's own lengths
// put them), so the fuzzer reaches the piece checks. What loads must have
// ceil(size / chunk_size) ids and survive StoreManifest + LoadManifest
// unchanged (else __builtin_trap).
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "sparetime/base/bytes.h"
#include "sparetime/imaging/manifest.h"

using namespace sparetime;

namespace {

class MemoryStore : public ChunkSink, public ChunkSource {
 public:
  Result<bool> Contains(const ChunkId& id) override { return blobs_.count(id) != 0; }
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override {
    bool had = blobs_.count(id) != 0;
    blobs_[id].assign(sealed.begin(), sealed.end());
    return had;
  }
  Status Flush() override { return Status::Ok(); }
  Result<std::vector<std::byte>> Get(const ChunkId& id) override {
    auto it = blobs_.find(id);
    if (it == blobs_.end()) return Status(ErrorCode::kNotFound, "chunk " + id.short_hex() + " not held");
    return it->second;
  }

 private:
  std::map<ChunkId, std::vector<std::byte>> blobs_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Split(fuzz::Bytes(data, size), "|PIECE|");
  MemoryStore store;
  std::vector<std::byte> sealed;
  std::vector<ChunkId> piece_ids;
  for (size_t i = 1; i < parts.size(); ++i) {
    ChunkId id = fuzz::SealManifest(parts[i], sealed);
    store.Put(id, sealed).status().IgnoreError();
    piece_ids.push_back(id);
  }
  std::vector<std::byte> root(parts[0].begin(), parts[0].end());
  // magic(8) version(4) size(8) chunk_size(4) count(8) json_len(4) json piece_count(4) ids
  constexpr size_t kJsonLenAt = 8 + 4 + 8 + 4 + 8;
  if (root.size() >= kJsonLenAt + 4) {
    uint64_t ids_at = kJsonLenAt + 4 + uint64_t{GetLe32(root.data() + kJsonLenAt)} + 4;
    for (const ChunkId& id : piece_ids) {
      if (ids_at + ChunkId::kSize > root.size()) break;
      std::memcpy(root.data() + ids_at, id.bytes.data(), ChunkId::kSize);
      ids_at += ChunkId::kSize;
    }
  }
  ChunkId root_id = fuzz::SealManifest(root, sealed);
  store.Put(root_id, sealed).status().IgnoreError();

  ManifestChunkIds(root_id, fuzz::FixedCodec(), store).status().IgnoreError();
  Result<Manifest> m = LoadManifest(root_id, fuzz::FixedCodec(), store);
  if (!m.ok()) return 0;
  if (m->chunk_size == 0 || m->chunks.size() != m->size / m->chunk_size + (m->size % m->chunk_size != 0)) {
    __builtin_trap();
  }
  MemoryStore again;
  Result<ChunkId> stored = StoreManifest(*m, fuzz::FixedCodec(), again);
  if (!stored.ok()) __builtin_trap();
  Result<Manifest> back = LoadManifest(*stored, fuzz::FixedCodec(), again);
  if (!back.ok() || back->size != m->size || back->chunk_size != m->chunk_size ||
      back->chunks != m->chunks || back->device.ToJson() != m->device.ToJson()) {
    __builtin_trap();
  }
  return 0;
}
