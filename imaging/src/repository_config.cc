// RepositoryConfig serialiser and validator (see repository_config.h).
#include "sparetime/imaging/repository_config.h"

#include <nlohmann/json.hpp>

#include "sparetime/imaging/chunker.h"
#include "sparetime/base/json_numbers.h"

namespace sparetime {

Status ValidateRepositoryConfig(const RepositoryConfig& config, const std::string& what) {
  if (config.version != kRepositoryConfigVersion &&
      config.version != kRepositoryConfigVersionIdHash) {
    return FailedPrecondition(what + ": repository format version " +
                              std::to_string(config.version) + " is not one this sparetime "
                              "supports (" + std::to_string(kRepositoryConfigVersion) + " or " +
                              std::to_string(kRepositoryConfigVersionIdHash) +
                              "); upgrade sparetime");
  }
  if (config.version != RepositoryConfigVersionFor(config.id_hash)) {
    return InvalidArgument(what + ": format version " + std::to_string(config.version) +
                           " does not go with chunk ids by " +
                           std::string(IdHashName(config.id_hash)) + " (version " +
                           std::to_string(RepositoryConfigVersionFor(config.id_hash)) + ")");
  }
  ST_RETURN_IF_ERROR(ValidateChunkSize(config.chunk_size).WithContext(what));
  if (config.zstd_level < 0 || config.zstd_level > 19) {
    return InvalidArgument(what + ": compression level " + std::to_string(config.zstd_level) +
                           " is out of range: use 0 (none) to 19");
  }
  return Status::Ok();
}

Result<RepositoryConfig> ConfigForInit(RepositoryConfig config) {
  if (config.chunk_size == 0) config.chunk_size = kDefaultChunkSize;
  config.version = RepositoryConfigVersionFor(config.id_hash);
  ST_RETURN_IF_ERROR(ValidateRepositoryConfig(config, "new repository"));
  return config;
}

std::string RepositoryConfigToJson(const RepositoryConfig& config, std::string_view format) {
  nlohmann::json j = {{"format", format},
                      {"version", config.version},
                      {"chunk_size", config.chunk_size},
                      {"zstd_level", config.zstd_level},
                      {"id_hash", IdHashName(config.id_hash)}};
  return j.dump(2) + "\n";
}

Result<RepositoryConfig> RepositoryConfigFromJson(std::string_view text, std::string_view format,
                                                  const std::string& what) {
  RepositoryConfig config;
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    ST_RETURN_IF_ERROR(CheckJsonIntegers(j, what));
    if (!j.is_object() || j.value("format", "") != format) {
      return Corruption(what + " is not a sparetime config (format \"" + std::string(format) +
                        "\" expected)");
    }
    config.version = j.at("version").get<int>();
    config.chunk_size = j.at("chunk_size").get<uint32_t>();
    config.zstd_level = j.at("zstd_level").get<int>();
    if (auto it = j.find("id_hash"); it != j.end()) {
      const std::string name = it->get<std::string>();
      std::optional<IdHash> hash = ParseIdHash(name);
      if (!hash) {
        return FailedPrecondition(what + " names chunk ids by \"" + name +
                                  "\", which this sparetime does not know (blake2b, "
                                  "hmac-sha256); upgrade sparetime");
      }
      config.id_hash = *hash;
    }
  } catch (const nlohmann::json::exception& e) {
    return Corruption(what + " is damaged: " + e.what());
  }
  Status valid = ValidateRepositoryConfig(config, what);
  if (valid.code() == ErrorCode::kInvalidArgument) {
    return Corruption(valid.message() + " (the file is damaged or was edited by hand)");
  }
  ST_RETURN_IF_ERROR(valid);
  return config;
}

}  // namespace sparetime
