// Roots: seal/open the snapshot list kept by peers (format in roots.h).
#include "roots.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "sparetime/imaging/chunker.h"
#include "sparetime/base/json_numbers.h"
#include "sparetime/imaging/repository_config.h"

namespace sparetime::replication {
namespace {

constexpr char kFormat[] = "sparetime-roots";
constexpr size_t kMaxRootsPlaintext = 16u << 20;

nlohmann::json SnapshotToJson(const Snapshot& s) {
  nlohmann::json j = {{"id", s.id},
                      {"label", s.label},
                      {"time", s.time},
                      {"device", s.device.ToJson()},
                      {"size", s.size},
                      {"chunk_size", s.chunk_size},
                      {"manifest", s.manifest_root.hex()},
                      {"stats", s.stats.ToJson()}};
  // Optional (issue 20): older lists lack it and read back as "".
  if (!s.consistency.empty()) j["consistency"] = s.consistency;
  return j;
}

Result<Snapshot> SnapshotFromJson(const nlohmann::json& j) {
  Snapshot s;
  s.id = j.at("id").get<std::string>();
  s.label = j.at("label").get<std::string>();
  s.time = j.at("time").get<int64_t>();
  ST_ASSIGN_OR_RETURN(s.device, DeviceIdentity::FromJson(j.at("device")));
  s.size = j.at("size").get<uint64_t>();
  s.chunk_size = j.at("chunk_size").get<uint32_t>();
  std::optional<ChunkId> root = ChunkId::FromHex(j.at("manifest").get<std::string>());
  if (!root) return Corruption("snapshot " + s.id + " has a malformed manifest id");
  s.manifest_root = *root;
  ST_ASSIGN_OR_RETURN(s.stats, SnapshotStats::FromJson(j.at("stats")));
  if (j.contains("consistency")) s.consistency = j.at("consistency").get<std::string>();
  return s;
}

}  // namespace

std::vector<std::byte> SealRoots(const Roots& roots, const Codec& codec) {
  nlohmann::json snapshots = nlohmann::json::array();
  for (const Snapshot& s : roots.snapshots) snapshots.push_back(SnapshotToJson(s));
  nlohmann::json j = {{"format", kFormat},
                      {"version", RepositoryConfigVersionFor(roots.config.id_hash)},
                      {"owner", roots.owner},
                      {"generation", roots.generation},
                      {"chunk_size", roots.config.chunk_size},
                      {"zstd_level", roots.config.zstd_level},
                      {"id_hash", IdHashName(roots.config.id_hash)},
                      {"snapshots", snapshots}};
  std::string text = j.dump();
  auto plaintext = std::as_bytes(std::span(text));
  ChunkId id = codec.Id(plaintext);
  std::vector<std::byte> sealed = codec.Seal(BlobKind::kManifest, id, plaintext);
  std::vector<std::byte> blob(ChunkId::kSize + sealed.size());
  std::memcpy(blob.data(), id.bytes.data(), ChunkId::kSize);
  std::memcpy(blob.data() + ChunkId::kSize, sealed.data(), sealed.size());
  return blob;
}

Result<Roots> OpenRoots(std::span<const std::byte> blob, const Codec& codec,
                        const std::string& owner, uint64_t generation) {
  const std::string what = "the snapshot list (roots) of " + owner;
  if (blob.size() < ChunkId::kSize) return Corruption(what + " is truncated");
  ChunkId id = ChunkId::FromBytes(blob.first<ChunkId::kSize>());
  Result<std::vector<std::byte>> plaintext =
      codec.Open(BlobKind::kManifest, id, blob.subspan(ChunkId::kSize), kMaxRootsPlaintext);
  if (!plaintext.ok()) {
    return Corruption(what + " fails authentication (" + plaintext.status().message() + ")");
  }
  try {
    nlohmann::json j = nlohmann::json::parse(
        std::string_view(reinterpret_cast<const char*>(plaintext->data()), plaintext->size()));
    ST_RETURN_IF_ERROR(CheckJsonIntegers(j, what, {"seconds"}));
    const int version = j.at("version").get<int>();
    if (j.at("format").get<std::string>() != kFormat ||
        (version != kRepositoryConfigVersion && version != kRepositoryConfigVersionIdHash)) {
      return Corruption(what + " has an unknown format (version " + std::to_string(version) +
                        "; written by a newer sparetime?)");
    }
    Roots roots;
    roots.owner = j.at("owner").get<std::string>();
    roots.generation = j.at("generation").get<uint64_t>();
    if (roots.owner != owner || roots.generation != generation) {
      return Corruption(what + " is for " + roots.owner + " generation " +
                        std::to_string(roots.generation) + ", not generation " +
                        std::to_string(generation) + " as the peer claims");
    }
    roots.config.chunk_size = j.at("chunk_size").get<uint32_t>();
    roots.config.zstd_level = j.at("zstd_level").get<int>();
    roots.config.version = version;
    if (auto it = j.find("id_hash"); it != j.end()) {
      std::optional<IdHash> hash = ParseIdHash(it->get<std::string>());
      if (!hash) return Corruption(what + " names an unknown chunk-id function");
      roots.config.id_hash = *hash;
    }
    if (Status valid = ValidateRepositoryConfig(roots.config, what); !valid.ok()) {
      return Corruption(valid.message());
    }
    for (const nlohmann::json& s : j.at("snapshots")) {
      ST_ASSIGN_OR_RETURN(Snapshot snapshot, SnapshotFromJson(s));
      roots.snapshots.push_back(std::move(snapshot));
    }
    return roots;
  } catch (const nlohmann::json::exception& e) {
    return Corruption(what + " does not parse: " + e.what());
  }
}

}  // namespace sparetime::replication
