// ops::Migrate: preflight, connect, freeze, dump+send, restore, kill (see
// migrate.h), and PeerCacheSink, the ChunkSink onto the target's cache.
#include "sparetime/ops/migrate.h"

#include <chrono>
#include <memory>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"
#include "sparetime/directory/entry.h"
#include "sparetime/migration/checkpoint.h"
#include "sparetime/migration/credentials.h"
#include "sparetime/transport/messages.h"

namespace sparetime::ops {
namespace {

namespace mig = sparetime::migration;
using SteadyClock = std::chrono::steady_clock;

double MillisSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// A ChunkSink onto the target's migration cache: puts are batched into
// MigratePutChunks messages (at most kMaxChunksPerPut chunks, ~3 MiB). Safe
// for concurrent use (the image writer puts from several threads): one
// message at a time on the session.
class PeerCacheSink final : public ChunkSink {
 public:
  explicit PeerCacheSink(peer::PeerClient& client) : client_(client) {}
  Result<std::vector<bool>> Held(std::span<const ChunkId> ids) EXCLUDES(mu_) {
    MutexLock l(mu_);
    return client_.MigrateHas(ids);
  }
  Result<bool> Contains(const ChunkId& id) override EXCLUDES(mu_) {
    ST_ASSIGN_OR_RETURN(std::vector<bool> held, Held(std::span(&id, 1)));
    return held[0];
  }
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override EXCLUDES(mu_) {
    MutexLock l(mu_);
    batch_.push_back({id, std::vector<std::byte>(sealed.begin(), sealed.end())});
    batch_bytes_ += sealed.size() + transport::kPutChunkItemOverhead;
    if (batch_.size() >= transport::kMaxChunksPerPut || batch_bytes_ >= kBatchBytes) {
      ST_RETURN_IF_ERROR(Send());
    }
    return false;
  }
  Status Flush() override EXCLUDES(mu_) {
    MutexLock l(mu_);
    return Send();
  }

 private:
  static constexpr size_t kBatchBytes = 3u << 20;
  Status Send() REQUIRES(mu_) {
    if (batch_.empty()) return Status::Ok();
    ST_ASSIGN_OR_RETURN(std::vector<Status> results, client_.MigratePut(std::move(batch_)));
    batch_.clear();
    batch_bytes_ = 0;
    for (const Status& s : results) ST_RETURN_IF_ERROR(s.WithContext("peer " + client_.peer().name));
    return Status::Ok();
  }
  peer::PeerClient& client_;  // one message at a time: used under mu_ only
  Mutex mu_;
  std::vector<transport::PutChunksRequest::Item> batch_ GUARDED_BY(mu_);
  size_t batch_bytes_ GUARDED_BY(mu_) = 0;
};

// A failure after the freeze: put the source back and say so in the error.
Status FailResumed(mig::FrozenProcess& frozen, const Status& error, SourceState* source) {
  Status resumed = frozen.Resume();
  if (!resumed.ok()) {
    *source = SourceState::kStopped;
    return error.WithContext("resuming process " + std::to_string(frozen.pid()) +
                             " failed too (" + resumed.message() + ")");
  }
  *source = SourceState::kRunning;
  return Status(error.code(), error.message() + "; process " + std::to_string(frozen.pid()) +
                                  " runs on unchanged");
}

}  // namespace

Result<peer::PeerEndpoint> FindAgent(const directory::DirectoryView& view,
                                     const std::string& self, const std::string& host,
                                     const std::string& source) {
  if (directory::EqualsIgnoreCase(host, self)) {
    return InvalidArgument("cannot migrate to " + host + ": that is this agent");
  }
  for (const auto& a : view.agents) {
    if (!directory::EqualsIgnoreCase(a.name, host)) continue;
    return peer::PeerEndpoint{
        a.name, a.address, a.port,
        transport::PublicKey::FromBytes(std::as_bytes(std::span(a.public_key)))};
  }
  return NotFound("no agent named " + host + " in the directory (" + source +
                  "); `sparetime peers` lists the agents");
}

Result<mig::MigrationKey> LoadMigrationKey(const std::string& dir) {
  ST_RETURN_IF_ERROR(MakeDirs(dir, 0700).WithContext("migration store"));
  return mig::MigrationKey::LoadOrCreate(dir + "/key");
}

Result<MigrateReport> Migrate(const MigrateRequest& r, SourceState* source_out) {
  SourceState ignored = SourceState::kUntouched;
  SourceState& source = source_out ? *source_out : ignored;
  source = SourceState::kUntouched;
  ST_ASSIGN_OR_RETURN(peer::PeerEndpoint target,
                      FindAgent(*r.view, r.config->name, r.to, r.directory_source));
  ST_ASSIGN_OR_RETURN(mig::MigrationKey key, LoadMigrationKey(r.config->state_dir + "/migration"));
  // Refuse before connecting, and connect before stopping anything.
  ST_RETURN_IF_ERROR(mig::Preflight(r.pid, {.command = "migrate"}));
  // Who it runs as there travels by name: every id needs one here.
  ST_ASSIGN_OR_RETURN(mig::Credentials creds, mig::ReadCredentials(r.pid));
  Result<mig::CredentialNames> names = mig::NameCredentials(creds);
  if (!names.ok()) {
    return Status(names.status().code(), "cannot migrate process " + std::to_string(r.pid) + ": " +
                                             names.status().message());
  }
  peer::PeerClientOptions client_options;
  client_options.io_timeout = std::chrono::minutes(5);  // the restore of a large image
  ST_ASSIGN_OR_RETURN(std::unique_ptr<peer::PeerClient> client,
                      peer::PeerClient::Connect(target, *r.identity, client_options));
  // An empty query: the target checks its policy for us before we stop anything.
  ST_RETURN_IF_ERROR(client->MigrateHas({}).status());
  // And whether it may run there as who it is (user by name, root or
  // capabilities only by policy).
  Status placed = client->MigrateCheck(
      {mig::IsPrivileged(creds), names->users, names->groups, std::move(names->supplementary)});
  if (!placed.ok()) {
    return Status(placed.code(), target.name + " refused process " + std::to_string(r.pid) + ": " +
                                     placed.message() + "; it runs on unchanged");
  }

  const auto frozen_at = SteadyClock::now();
  ST_ASSIGN_OR_RETURN(mig::FrozenProcess frozen,
                      mig::FrozenProcess::Freeze(r.pid, mig::CheckpointOptions{}));
  source = SourceState::kStopped;
  PeerCacheSink sink(*client);
  auto held = [&](std::span<const ChunkId> ids) { return sink.Held(ids); };
  mig::ImageWriter writer(key, sink, held);  // pages are sent while they are read
  Result<mig::ProcessImage> image = frozen.Dump(writer);
  if (!image.ok()) return FailResumed(frozen, image.status(), &source);
  MigrateReport report;
  report.pid = image->pid;
  report.comm = image->comm;
  report.to = target.name;
  report.dump_ms = MillisSince(frozen_at);
  Result<mig::StoredImage> stored = writer.Finish(*image, &report.stats);
  if (!stored.ok()) return FailResumed(frozen, stored.status(), &source);
  Result<std::vector<ChunkId>> index = mig::StoreIndex(*stored, key, sink);
  if (!index.ok()) return FailResumed(frozen, index.status(), &source);
  const double sent_ms = MillisSince(frozen_at);
  report.send_ms = sent_ms - report.dump_ms;
  transport::MigrateRestoreRequest request{key.Secret(), std::move(*index)};
  Result<transport::MigrateRestoreReply> restored = client->MigrateRestore(std::move(request));
  if (!restored.ok() && restored.status().code() == ErrorCode::kUnavailable) {
    // No answer: the target may have restored it. Never let it run twice.
    Status stopped = frozen.LeaveStopped();
    const std::string pid = std::to_string(r.pid);
    return Status(restored.status().code(),
                  restored.status().message() + "; the session to " + target.name +
                      " broke during the restore, so the process may run there now. Process " +
                      pid + " is left " + (stopped.ok() ? "stopped" : "frozen") + " here: check " +
                      target.name + "'s log, then `kill -CONT " + pid + "` or `kill -KILL " +
                      pid + "`");
  }
  if (!restored.ok()) {
    return FailResumed(frozen, restored.status().WithContext("restore on " + target.name),
                       &source);
  }
  report.target_pid = restored->pid;
  // The target runs the process: the source must go, or it would run twice.
  Status killed = frozen.Kill();
  report.frozen_ms = MillisSince(frozen_at);
  report.restore_ms = report.frozen_ms - sent_ms;
  client->Close().IgnoreError();
  if (!killed.ok()) {
    return killed.WithContext("the process runs on " + target.name +
                              " now, but the source could not be killed; kill it by hand");
  }
  source = SourceState::kKilled;
  return report;
}

}  // namespace sparetime::ops
