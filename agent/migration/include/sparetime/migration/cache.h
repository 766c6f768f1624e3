// MigrationCache: a target agent's chunk caches of incoming migrations, one
// PackStore per source agent at <dir>/from-<source>/ (dir is
// <state_dir>/migration). A cache lets a later migration of a similar
// process send only what is new, but nothing else ever removes its chunks,
// so it is bounded: after each restore from a source, Trim drops that
// source's whole cache when it holds more than `max_bytes`; DropStale (at
// daemon start) drops caches not written for `max_age`. A dropped cache is
// deleted from disk; the next migration from that source sends everything.
//
// Invariants: source names are [A-Za-z0-9._-] (agent names); the "from-"
// prefix keeps "." and ".." harmless. Thread safety: all methods; a store
// handed out stays usable by its holder even when its cache is dropped
// meanwhile (its later restore then fails and the source runs on).
#ifndef SPARETIME_MIGRATION_CACHE_H_
#define SPARETIME_MIGRATION_CACHE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/pack_store.h"

namespace sparetime::migration {

struct CacheLimits {
  uint64_t max_bytes = 2ull << 30;              // sealed bytes per source
  std::chrono::hours max_age{24 * 30};          // since the last write
};

class MigrationCache {
 public:
  explicit MigrationCache(std::string dir, CacheLimits limits = {});

  // The cache of `source`, created on first use.
  Result<std::shared_ptr<PackStore>> Open(const std::string& source);
  // Drops the cache of `source` when it holds more than max_bytes; true when
  // it did.
  Result<bool> Trim(const std::string& source);
  // Drops every cache whose newest file is older than max_age; returns the
  // sources dropped.
  Result<std::vector<std::string>> DropStale();

 private:
  Status Drop(const std::string& source) REQUIRES(mu_);

  const std::string dir_;
  const CacheLimits limits_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<PackStore>> open_ GUARDED_BY(mu_);  // by source
};

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_CACHE_H_
