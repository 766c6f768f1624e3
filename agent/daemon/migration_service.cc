// MigrationService implementation (see migration_service.h).
#include "migration_service.h"

#include <sys/wait.h>

#include <chrono>

#include "sparetime/base/fd.h"
#include "sparetime/migration/image_store.h"
#include "sparetime/migration/restore.h"

namespace sparetime::daemon {
namespace {

namespace mig = sparetime::migration;
using std::chrono::milliseconds;

// How long a restored process must have run before we confirm it: a process
// that cannot run here (a bad restore) dies within its first few instructions.
constexpr milliseconds kConfirmAfter{100};
constexpr milliseconds kReapInterval{200};

std::string Describe(int status) {
  return WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                           : "was killed by signal " + std::to_string(WTERMSIG(status));
}

}  // namespace

MigrationService::MigrationService(std::string state_dir, std::function<Status(const std::string&)> allowed,
                                   std::function<void(const std::string&)> log, mig::CacheLimits limits)
    : allowed_(std::move(allowed)),
      log_(std::move(log)),
      caches_(std::move(state_dir) + "/migration", limits),
      reaper_([this](std::stop_token stop) { Reap(stop); }) {
  auto stale = caches_.DropStale();
  if (!stale.ok()) log_("migration caches: " + stale.status().message());
  for (const std::string& source : stale.ok() ? *stale : std::vector<std::string>{})
    log_("dropped the migration cache of " + source + ": unused for too long");
}

MigrationService::~MigrationService() {
  reaper_.request_stop();
  reaper_.join();
}

Result<std::shared_ptr<PackStore>> MigrationService::Cache(const std::string& source) {
  ST_RETURN_IF_ERROR(allowed_(source));
  return caches_.Open(source);
}

Result<std::vector<bool>> MigrationService::Has(const std::string& source, std::span<const ChunkId> ids) {
  ST_ASSIGN_OR_RETURN(std::shared_ptr<PackStore> cache, Cache(source));
  std::vector<bool> out;
  out.reserve(ids.size());
  for (const ChunkId& id : ids) {
    ST_ASSIGN_OR_RETURN(bool held, cache->Contains(id));
    out.push_back(held);
  }
  return out;
}

Result<std::vector<Status>> MigrationService::Put(const std::string& source,
                                                  const std::vector<transport::PutChunksRequest::Item>& chunks) {
  ST_ASSIGN_OR_RETURN(std::shared_ptr<PackStore> cache, Cache(source));
  std::vector<Status> out;
  out.reserve(chunks.size());
  for (const auto& item : chunks) out.push_back(cache->Put(item.id, item.sealed).status());
  ST_RETURN_IF_ERROR(cache->Flush());  // durable before we say so
  return out;
}

Result<transport::MigrateRestoreReply> MigrationService::Restore(const std::string& source,
                                                                 const transport::MigrateRestoreRequest& request) {
  ST_ASSIGN_OR_RETURN(std::shared_ptr<PackStore> cache, Cache(source));
  ST_ASSIGN_OR_RETURN(mig::MigrationKey key, mig::MigrationKey::FromSecret(request.key.Clone()));
  ST_ASSIGN_OR_RETURN(mig::StoredImage stored, mig::LoadIndex(request.index, key, *cache));
  ST_ASSIGN_OR_RETURN(mig::ProcessImage image, mig::LoadImage(stored, key, *cache));
  const std::string what = "process " + std::to_string(image.pid) + " (" + image.comm + ") from " + source;
  Result<pid_t> pid = mig::Restore(image);
  if (!pid.ok()) {
    log_("refused to restore " + what + ": " + pid.status().message());
    return pid.status();
  }
  std::this_thread::sleep_for(kConfirmAfter);
  int status = 0;
  if (::waitpid(*pid, &status, WNOHANG) == *pid) {
    log_("restored " + what + ", but it " + Describe(status) + " at once");
    return Status(ErrorCode::kInternal, "the restored " + what + " " + Describe(status) +
                                            " right after the restore; the source should run on");
  }
  {
    MutexLock l(mu_);
    restored_[*pid] = what;
  }
  log_("restored " + what + ": running");
  if (auto trimmed = caches_.Trim(source); !trimmed.ok())
    log_("migration cache of " + source + ": " + trimmed.status().message());
  else if (*trimmed)
    log_("dropped the migration cache of " + source + ": over its size limit");
  return transport::MigrateRestoreReply{static_cast<uint32_t>(*pid)};
}

void MigrationService::Reap(std::stop_token stop) {
  while (!stop.stop_requested()) {
    {
      MutexLock l(mu_);
      for (auto it = restored_.begin(); it != restored_.end();) {
        int status = 0;
        if (::waitpid(it->first, &status, WNOHANG) == it->first) {
          log_("migrated " + it->second + " " + Describe(status));
          it = restored_.erase(it);
        } else {
          ++it;
        }
      }
    }
    std::this_thread::sleep_for(kReapInterval);
  }
}

}  // namespace sparetime::daemon
