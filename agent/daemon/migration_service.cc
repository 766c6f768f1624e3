// MigrationService implementation (see migration_service.h).
#include "migration_service.h"

#include <sys/wait.h>
#include <unistd.h>

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

// Empty when /proc belongs to this process's PID namespace; else why not.
// A restore reads and writes processes by PID through /proc: with another
// namespace's /proc (`unshare --pid --fork` without --mount-proc) those PIDs
// name other processes, and a restore would fail midway (or worse).
std::string ProcMismatch() {
  char link[32] = {};
  ssize_t n = ::readlink("/proc/self", link, sizeof link - 1);
  const std::string seen = n > 0 ? std::string(link, static_cast<size_t>(n)) : "";
  const std::string mine = std::to_string(::getpid());
  if (seen == mine) return "";
  return "/proc does not belong to sparetimed's PID namespace (/proc/self is \"" + seen +
         "\", sparetimed's PID is " + mine + "), so it cannot restore processes: give it its own "
         "/proc (e.g. `unshare --pid --fork --mount-proc`, or mount -t proc proc /proc inside "
         "the namespace) or run it in the host's PID namespace";
}

}  // namespace

MigrationService::MigrationService(std::string state_dir, std::string self,
                                   std::function<Status(const std::string&)> allowed,
                                   std::function<Status(const std::string&)> privileged,
                                   std::function<void(const std::string&)> log, mig::CacheLimits limits)
    : self_(std::move(self)),
      allowed_(std::move(allowed)),
      privileged_(std::move(privileged)),
      log_(std::move(log)),
      caches_(std::move(state_dir) + "/migration", limits),
      proc_mismatch_(ProcMismatch()),
      reaper_([this](std::stop_token stop) { Reap(stop); }) {
  if (!proc_mismatch_.empty()) log_("migrations refused: " + proc_mismatch_);
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
  if (!proc_mismatch_.empty()) {
    log_("refused a migration from " + source + ": " + proc_mismatch_);
    return Status(ErrorCode::kFailedPrecondition, "target: " + proc_mismatch_);
  }
  if (Status allowed = allowed_(source); !allowed.ok()) {
    log_("refused a migration from " + source + ": " + allowed.message());
    return allowed;
  }
  return caches_.Open(source);
}

Result<mig::Credentials> MigrationService::Place(const std::string& what, const mig::Credentials& creds,
                                                 const mig::CredentialNames& names, bool privileged) {
  if (privileged) {
    ST_RETURN_IF_ERROR(privileged_(what));
  }
  return mig::MapCredentials(creds, names, self_);
}

Status MigrationService::Check(const std::string& source, const transport::MigrateCheckRequest& request) {
  ST_RETURN_IF_ERROR(Cache(source).status());
  // Only the ids' count matters here: Place maps the names.
  mig::Credentials creds;
  creds.groups.resize(request.supplementary.size());
  mig::CredentialNames names{request.users, request.groups, request.supplementary};
  const std::string what = "a process of user " + request.users[1] + " from " + source +
                           (request.privileged ? " runs as root or with capabilities" : "");
  Status placed = Place(what, creds, names, request.privileged).status();
  if (!placed.ok()) log_("refused a migration from " + source + ": " + placed.message());
  return placed;
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
  // Again on the image itself: what runs is what the check allowed.
  const std::string privilege = mig::DescribePrivilege(image.creds);
  auto creds = Place(what + " " + privilege, image.creds, image.names, !privilege.empty());
  if (!creds.ok()) {
    log_("refused to restore " + what + ": " + creds.status().message());
    return creds.status();
  }
  image.creds = std::move(*creds);
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
