// MigrationCache (see cache.h): per-source PackStores under <dir>/from-*,
// dropped whole when too big (after a restore) or unused for too long.
#include "sparetime/migration/cache.h"

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <system_error>

#include "sparetime/base/fd.h"

namespace sparetime::migration {
namespace {

constexpr std::string_view kPrefix = "from-";

// Newest modification time of any file in `path` (recursively), or nullopt.
std::optional<std::filesystem::file_time_type> NewestWrite(const std::filesystem::path& path, std::error_code& ec) {
  std::optional<std::filesystem::file_time_type> newest;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    auto t = it->last_write_time(ec);
    if (ec) return std::nullopt;
    if (!newest || t > *newest) newest = t;
  }
  return newest;
}

}  // namespace

MigrationCache::MigrationCache(std::string dir, CacheLimits limits) : dir_(std::move(dir)), limits_(limits) {}

Result<std::shared_ptr<PackStore>> MigrationCache::Open(const std::string& source) {
  MutexLock l(mu_);
  auto& cache = open_[source];
  if (!cache) {
    const std::string path = dir_ + "/" + std::string(kPrefix) + source;
    ST_RETURN_IF_ERROR(MakeDirs(dir_, 0700));
    auto store = PackStore::Open(path);
    if (!store.ok() && store.status().code() == ErrorCode::kNotFound) store = PackStore::Create(path);
    if (!store.ok()) {
      open_.erase(source);
      return store.status().WithContext("migration cache " + path);
    }
    cache = std::move(*store);
  }
  return cache;
}

Status MigrationCache::Drop(const std::string& source) {
  open_.erase(source);
  const std::string path = dir_ + "/" + std::string(kPrefix) + source;
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return ErrnoStatus("removing the migration cache " + path + " (delete it by hand)", ec.value());
  return Status::Ok();
}

Result<bool> MigrationCache::Trim(const std::string& source) {
  ST_ASSIGN_OR_RETURN(std::shared_ptr<PackStore> cache, Open(source));
  if (cache->Stats().stored_bytes <= limits_.max_bytes) return false;
  MutexLock l(mu_);
  ST_RETURN_IF_ERROR(Drop(source));
  return true;
}

Result<std::vector<std::string>> MigrationCache::DropStale() {
  std::vector<std::string> dropped;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir_, ec);
  if (ec == std::errc::no_such_file_or_directory) return dropped;
  const auto cutoff = std::filesystem::file_time_type::clock::now() - limits_.max_age;
  MutexLock l(mu_);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(kPrefix) || !it->is_directory(ec)) continue;
    std::error_code walk;
    auto newest = NewestWrite(it->path(), walk);
    if (walk || (newest && *newest >= cutoff)) continue;  // unreadable or recent: keep
    const std::string source = name.substr(kPrefix.size());
    ST_RETURN_IF_ERROR(Drop(source));
    dropped.push_back(source);
  }
  if (ec) return ErrnoStatus("listing the migration caches in " + dir_, ec.value());
  return dropped;
}

}  // namespace sparetime::migration
