// libFuzzer target: the repository's config file (JSON,
// RepositoryConfigFromJson). What parses must be valid and serialize to a
// document that parses to the same config (else __builtin_trap).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "sparetime/imaging/repository_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparetime;
  Result<RepositoryConfig> c = RepositoryConfigFromJson(fuzz::Text(data, size), "sparetime-repository", "config");
  if (!c.ok()) return 0;
  if (!ValidateRepositoryConfig(*c, "config").ok()) __builtin_trap();
  Result<RepositoryConfig> again =
      RepositoryConfigFromJson(RepositoryConfigToJson(*c, "sparetime-repository"), "sparetime-repository", "config");
  if (!again.ok() || again->chunk_size != c->chunk_size || again->zstd_level != c->zstd_level ||
      again->version != c->version || again->id_hash != c->id_hash) {
    __builtin_trap();
  }
  return 0;
}
