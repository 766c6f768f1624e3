// RepositoryConfig: the settings of a set of backups (format version, chunk
// size, zstd level, chunk-id function), and the one serialiser and validator of them. The
// local repository (repository.h: <repo>/config), the peer backups'
// local copy (replication/peer_repository.h: state_dir/backup/config.json)
// and the sealed roots on the peers all check a config with
// ValidateRepositoryConfig, so none of them accepts what another refuses.
//
// Invariants of a valid config: version == RepositoryConfigVersionFor(
// id_hash) — 1 for BLAKE2b ids (every repository made before HMAC-SHA-256
// ids existed, with no "id_hash" field), 2 for HMAC-SHA-256, so a sparetime
// that predates it refuses such a repository ("upgrade sparetime") instead
// of naming its chunks with the wrong function; chunk_size a power of two in
// [64 KiB, 4 MiB] (ValidateChunkSize); zstd level in [0, 19]. The id
// function is chosen at init and never changes: nothing rewrites it.
#ifndef SPARETIME_IMAGING_REPOSITORY_CONFIG_H_
#define SPARETIME_IMAGING_REPOSITORY_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "sparetime/base/status.h"
#include "sparetime/imaging/codec.h"

namespace sparetime {

inline constexpr int kRepositoryConfigVersion = 1;         // BLAKE2b ids
inline constexpr int kRepositoryConfigVersionIdHash = 2;   // HMAC-SHA-256 ids

constexpr int RepositoryConfigVersionFor(IdHash h) {
  return h == IdHash::kBlake2b ? kRepositoryConfigVersion : kRepositoryConfigVersionIdHash;
}

struct RepositoryConfig {
  int version = kRepositoryConfigVersion;
  uint32_t chunk_size = 0;  // 0: kDefaultChunkSize (at init)
  int zstd_level = CodecOptions::kDefaultZstdLevel;
  IdHash id_hash = IdHash::kBlake2b;
};

// OK, or what is wrong, prefixed with `what` (the file or blob): an unknown
// version is kFailedPrecondition (upgrade sparetime), a bad chunk size or
// zstd level kInvalidArgument.
Status ValidateRepositoryConfig(const RepositoryConfig& config, const std::string& what);

// Init's config: chunk size 0 becomes kDefaultChunkSize, the version the
// one id_hash needs; then validated
// (kInvalidArgument naming the bad value and the allowed range).
Result<RepositoryConfig> ConfigForInit(RepositoryConfig requested);

// {"format": format, "version", "chunk_size", "zstd_level", "id_hash"} as
// indented JSON.
std::string RepositoryConfigToJson(const RepositoryConfig& config, std::string_view format);

// Parses and validates what RepositoryConfigToJson wrote (or an older
// sparetime: no "id_hash" field means BLAKE2b). `what` names the file.
// Malformed JSON, a missing field or another format is kCorruption; an
// unknown id hash name kFailedPrecondition;
// an unknown version kFailedPrecondition; a bad chunk size or zstd level
// kCorruption (a stored config is never a usage error).
Result<RepositoryConfig> RepositoryConfigFromJson(std::string_view text, std::string_view format,
                                                  const std::string& what);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_REPOSITORY_CONFIG_H_
