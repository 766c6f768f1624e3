// libFuzzer target: an owner's snapshot list as peers keep it
// (replication/src/roots.h, OpenRoots). The input's first byte picks the
// path: odd — the input is the blob as a peer returns it (id || sealed), which
// must fail authentication cleanly; even — the rest is the JSON plaintext,
// sealed by the harness under a fixed key, with the owner and generation the
// caller expects read from it when it has them (so the fuzzer gets past that
// check). What opens must seal and open to the same list (else
// __builtin_trap).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "roots.h"

using namespace sparetime;
using namespace sparetime::replication;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const std::byte> in = fuzz::Bytes(data + 1, size - 1);
  const Codec& codec = fuzz::FixedCodec();
  if (data[0] & 1) {
    OpenRoots(in, codec, "fuzz", 0).status().IgnoreError();
    return 0;
  }
  std::string owner = "fuzz";
  uint64_t generation = 0;
  nlohmann::json j = nlohmann::json::parse(in.begin(), in.end(), nullptr, false);
  if (j.is_object()) {
    if (auto o = j.find("owner"); o != j.end() && o->is_string()) owner = o->get<std::string>();
    if (auto g = j.find("generation"); g != j.end() && g->is_number_unsigned()) generation = g->get<uint64_t>();
  }
  std::vector<std::byte> sealed;
  ChunkId id = fuzz::SealManifest(in, sealed);
  std::vector<std::byte> blob(id.bytes.begin(), id.bytes.end());
  blob.insert(blob.end(), sealed.begin(), sealed.end());
  Result<Roots> roots = OpenRoots(blob, codec, owner, generation);
  if (!roots.ok()) return 0;
  Result<Roots> again = OpenRoots(SealRoots(*roots, codec), codec, owner, generation);
  if (!again.ok() || again->snapshots.size() != roots->snapshots.size() ||
      again->config.chunk_size != roots->config.chunk_size ||
      again->config.id_hash != roots->config.id_hash || again->config.version != roots->config.version) {
    __builtin_trap();
  }
  for (size_t i = 0; i < roots->snapshots.size(); ++i) {
    if (again->snapshots[i].id != roots->snapshots[i].id ||
        again->snapshots[i].manifest_root != roots->snapshots[i].manifest_root ||
        again->snapshots[i].size != roots->snapshots[i].size) {
      __builtin_trap();
    }
  }
  return 0;
}
