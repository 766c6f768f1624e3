// Process migration commands (see migration_commands.h).
//
// checkpoint: opens the migration store first (so a store problem never
// stops the process), freezes, dumps, stores the pages as chunks, writes
// FILE, then leaves the source stopped or running. Any failure resumes the
// source exactly as it was. restore-process: reads FILE and its chunks,
// restores the process as a child of this command, and with --wait reaps it
// and exits with its status (128 + signal number when a signal ended it).
// migrate: preflight, connect (authenticated session, as this agent) and
// have the target check its policy before anything stops; freeze, dump, send the pages the target's cache
// lacks, then the index and key; the target restores and confirms; only then
// is the source killed. Any failure before the confirmation resumes it, but
// a session lost while the target restores leaves it stopped (it may run
// there already: never twice).
#include "migration_commands.h"

#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "agent_context.h"
#include "exit_codes.h"
#include "format.h"
#include "sparetime/base/fd.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/entry.h"
#include "sparetime/peer/peer_client.h"
#include "sparetime/transport/identity.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/migration/checkpoint.h"
#include "sparetime/migration/image_store.h"
#include "sparetime/migration/restore.h"

namespace sparetime::cli {

struct MigrationCommands::Options {
  CLI::App* checkpoint = nullptr;
  CLI::App* restore = nullptr;
  int pid = 0;
  std::string to;
  bool leave_running = false;
  std::string file;
  bool wait = false;
  std::string store;  // --store DIR (checkpoint, restore-process)
  CLI::App* migrate = nullptr;
  std::string host;
};

namespace {

namespace mig = sparetime::migration;
using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// This host's migration directory: --store, else <state_dir>/migration of
// the agent config (--config, or the default file when it exists).
Result<std::string> MigrationDir(const GlobalOptions& g, const std::string& store) {
  if (!store.empty()) return store;
  Result<config::AgentConfig> cfg = config::LoadConfig(ConfigPath(g));
  if (cfg.ok()) return cfg->state_dir + "/migration";
  if (g.config.empty() && cfg.status().code() == ErrorCode::kNotFound)
    return config::AgentConfig{}.state_dir + "/migration";
  return cfg.status();
}

struct LocalStore {
  std::string dir;
  std::optional<mig::MigrationKey> key;
  std::unique_ptr<PackStore> chunks;
};

// `dir`/key, created (with `dir`) on first use.
Result<mig::MigrationKey> LoadKey(const std::string& dir) {
  ST_RETURN_IF_ERROR(MakeDirs(dir, 0700).WithContext("migration store"));
  return mig::MigrationKey::LoadOrCreate(dir + "/key");
}

// The key and the chunk store of `dir`.
Result<LocalStore> OpenLocalStore(const std::string& dir) {
  LocalStore s;
  s.dir = dir;
  ST_ASSIGN_OR_RETURN(mig::MigrationKey key, LoadKey(dir));
  s.key.emplace(std::move(key));
  auto store = PackStore::Open(dir + "/chunks");
  if (!store.ok() && store.status().code() == ErrorCode::kNotFound) store = PackStore::Create(dir + "/chunks");
  if (!store.ok()) return store.status().WithContext("migration store " + dir + "/chunks");
  s.chunks = std::move(*store);
  return s;
}

// A failure after the freeze: put the source back and say so.
int FailResumed(mig::FrozenProcess& frozen, const Status& error) {
  Status resumed = frozen.Resume();
  if (!resumed.ok()) return Fail(error.WithContext("resuming process " + std::to_string(frozen.pid()) +
                                                   " failed too (" + resumed.message() + ")"),
                                 Stage::kWork);
  std::fprintf(stderr, "sparetime: process %d runs on unchanged\n", frozen.pid());
  return Fail(error, Stage::kWork);
}

int Checkpoint(const GlobalOptions& g, const MigrationCommands::Options& o) {
  Result<std::string> dir = MigrationDir(g, o.store);
  if (!dir.ok()) return Fail(dir.status(), Stage::kConfig);
  Result<LocalStore> local = OpenLocalStore(*dir);
  if (!local.ok()) return Fail(local.status(), Stage::kWork);

  mig::CheckpointOptions options;
  const auto frozen_at = Clock::now();
  Result<mig::FrozenProcess> frozen = mig::FrozenProcess::Freeze(o.pid, options);
  if (!frozen.ok()) return Fail(frozen.status(), Stage::kWork);
  mig::ImageWriter writer(*local->key, *local->chunks);  // pages are sealed while they are read
  Result<mig::ProcessImage> image = frozen->Dump(writer);
  if (!image.ok()) return FailResumed(*frozen, image.status());
  mig::StoreStats stats;
  Result<mig::StoredImage> stored = writer.Finish(*image, &stats);
  Status written = stored.ok() ? mig::WriteImageFile(*stored, o.to) : stored.status();
  if (!written.ok()) return FailResumed(*frozen, written);
  Status left = o.leave_running ? frozen->Resume() : frozen->LeaveStopped();
  const double frozen_ms = MillisSince(frozen_at);
  if (!left.ok()) return Fail(left, Stage::kWork);

  if (g.json) {
    nlohmann::json out = {{"pid", image->pid},
                          {"comm", image->comm},
                          {"file", o.to},
                          {"store", local->dir},
                          {"pages", stats.pages},
                          {"zero_pages", stats.zero_pages},
                          {"unique_chunks", stats.unique_chunks},
                          {"new_chunks", stats.new_chunks},
                          {"new_bytes", stats.new_bytes},
                          {"frozen_ms", frozen_ms},
                          {"source", o.leave_running ? "running" : "stopped"}};
    std::cout << out.dump(2) << "\n";
  } else if (!g.quiet) {
    std::printf("checkpointed process %d (%s) to %s: %s in %llu pages, %llu new chunks (%s sealed) in %s; "
                "frozen %.0f ms\n",
                image->pid, image->comm.c_str(), o.to.c_str(), HumanBytes(stats.pages * mig::kPageSize).c_str(),
                static_cast<unsigned long long>(stats.pages), static_cast<unsigned long long>(stats.new_chunks),
                HumanBytes(stats.new_bytes).c_str(), local->dir.c_str(), frozen_ms);
    if (o.leave_running)
      std::printf("process %d keeps running; restore the image only after it is gone (same PID)\n", image->pid);
    else
      std::printf("process %d is stopped: `kill -CONT %d` continues it, `kill -KILL %d` frees its PID for "
                  "`sparetime restore-process %s`\n",
                  image->pid, image->pid, image->pid, o.to.c_str());
  }
  return kExitOk;
}

// waitpid for the restored child; its shell-style exit status.
int WaitForExit(const GlobalOptions& g, pid_t pid) {
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, 0) == pid) break;
    if (errno != EINTR) return Fail(ErrnoStatus("waiting for process " + std::to_string(pid), errno), Stage::kWork);
    if (g.interrupted && g.interrupted->load()) {
      std::fprintf(stderr, "sparetime: interrupted; process %d keeps running without us\n", pid);
      return kExitInterrupted;
    }
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (g.json) {
    std::cout << nlohmann::json{{"pid", pid}, {"exit_status", code}}.dump() << "\n";
  } else if (!g.quiet) {
    std::fprintf(stderr, "sparetime: process %d %s %d\n", pid,
                 WIFEXITED(status) ? "exited with status" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  return code;
}

int RestoreProcess(const GlobalOptions& g, const MigrationCommands::Options& o) {
  Result<std::string> dir = MigrationDir(g, o.store);
  if (!dir.ok()) return Fail(dir.status(), Stage::kConfig);
  Result<mig::StoredImage> stored = mig::ReadImageFile(o.file);
  if (!stored.ok()) return Fail(stored.status(), Stage::kWork);
  Result<LocalStore> local = OpenLocalStore(*dir);
  if (!local.ok()) return Fail(local.status(), Stage::kWork);
  Result<mig::ProcessImage> image = mig::LoadImage(*stored, *local->key, *local->chunks);
  if (!image.ok()) return Fail(image.status().WithContext(o.file + " (store " + local->dir + ")"), Stage::kWork);
  Result<pid_t> pid = mig::Restore(*image);
  if (!pid.ok()) return Fail(pid.status(), Stage::kWork);
  if (!o.wait) {
    if (g.json)
      std::cout << nlohmann::json{{"pid", *pid}, {"comm", image->comm}}.dump() << "\n";
    else if (!g.quiet)
      std::printf("restored process %d (%s)\n", *pid, image->comm.c_str());
    return kExitOk;
  }
  if (!g.json && !g.quiet) std::fprintf(stderr, "sparetime: restored process %d (%s); waiting for it to exit\n", *pid,
                                        image->comm.c_str());
  return WaitForExit(g, *pid);
}

// A ChunkSink onto the target's migration cache: puts are batched into
// MigratePutChunks messages (at most kMaxChunksPerPut chunks, ~3 MiB). Safe
// for concurrent use (the image writer puts from several threads): one
// message at a time on the session.
class PeerCacheSink final : public ChunkSink {
 public:
  explicit PeerCacheSink(peer::PeerClient& client) : client_(client) {}
  Result<std::vector<bool>> Held(std::span<const ChunkId> ids) {
    std::lock_guard l(mu_);
    return client_.MigrateHas(ids);
  }
  Result<bool> Contains(const ChunkId& id) override {
    ST_ASSIGN_OR_RETURN(std::vector<bool> held, Held(std::span(&id, 1)));
    return held[0];
  }
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override {
    std::lock_guard l(mu_);
    batch_.push_back({id, std::vector<std::byte>(sealed.begin(), sealed.end())});
    batch_bytes_ += sealed.size() + transport::kPutChunkItemOverhead;
    if (batch_.size() >= transport::kMaxChunksPerPut || batch_bytes_ >= kBatchBytes) ST_RETURN_IF_ERROR(Send());
    return false;
  }
  Status Flush() override {
    std::lock_guard l(mu_);
    return Send();
  }

 private:
  static constexpr size_t kBatchBytes = 3u << 20;
  Status Send() {  // REQUIRES: mu_ held
    if (batch_.empty()) return Status::Ok();
    ST_ASSIGN_OR_RETURN(std::vector<Status> results, client_.MigratePut(std::move(batch_)));
    batch_.clear();
    batch_bytes_ = 0;
    for (const Status& s : results) ST_RETURN_IF_ERROR(s.WithContext("peer " + client_.peer().name));
    return Status::Ok();
  }
  peer::PeerClient& client_;
  std::mutex mu_;
  std::vector<transport::PutChunksRequest::Item> batch_;
  size_t batch_bytes_ = 0;
};

Result<peer::PeerEndpoint> FindAgent(const AgentContext& ctx, const std::string& host) {
  if (directory::EqualsIgnoreCase(host, ctx.config.name))
    return InvalidArgument("cannot migrate to " + host + ": that is this agent");
  for (const auto& a : ctx.state.view.agents) {
    if (!directory::EqualsIgnoreCase(a.name, host)) continue;
    return peer::PeerEndpoint{a.name, a.address, a.port,
                              transport::PublicKey::FromBytes(std::as_bytes(std::span(a.public_key)))};
  }
  return NotFound("no agent named " + host + " in the directory (" + ctx.state.source +
                  "); `sparetime peers` lists the agents");
}

int Migrate(const GlobalOptions& g, const MigrationCommands::Options& o) {
  int exit_code = kExitOk;
  Result<AgentContext> ctx = LoadAgentContext(g, &exit_code);
  if (!ctx.ok()) return exit_code;
  Result<peer::PeerEndpoint> target = FindAgent(*ctx, o.host);
  if (!target.ok()) return Fail(target.status(), Stage::kWork);
  const std::string& state_dir = ctx->config.state_dir;
  Result<transport::Identity> me = transport::Identity::Load(state_dir + "/identity.key");
  if (!me.ok()) return Fail(me.status().WithContext("this agent's identity (is sparetimed set up here?)"), Stage::kConfig);
  Result<mig::MigrationKey> key = LoadKey(state_dir + "/migration");
  if (!key.ok()) return Fail(key.status(), Stage::kWork);
  // Refuse before connecting, and connect before stopping anything.
  if (Status s = mig::Preflight(o.pid); !s.ok()) return Fail(s, Stage::kWork);
  peer::PeerClientOptions client_options;
  client_options.io_timeout = std::chrono::minutes(5);  // the restore of a large image
  Result<std::unique_ptr<peer::PeerClient>> client = peer::PeerClient::Connect(*target, *me, client_options);
  if (!client.ok()) return Fail(client.status(), Stage::kWork);
  // An empty query: the target checks its policy for us before we stop anything.
  if (auto asked = (*client)->MigrateHas({}); !asked.ok()) return Fail(asked.status(), Stage::kWork);

  const auto frozen_at = Clock::now();
  Result<mig::FrozenProcess> frozen = mig::FrozenProcess::Freeze(o.pid, mig::CheckpointOptions{});
  if (!frozen.ok()) return Fail(frozen.status(), Stage::kWork);
  PeerCacheSink sink(**client);
  auto held = [&](std::span<const ChunkId> ids) { return sink.Held(ids); };
  mig::ImageWriter writer(*key, sink, held);  // pages are sent while they are read
  Result<mig::ProcessImage> image = frozen->Dump(writer);
  if (!image.ok()) return FailResumed(*frozen, image.status());
  const double dump_ms = MillisSince(frozen_at);
  mig::StoreStats stats;
  Result<mig::StoredImage> stored = writer.Finish(*image, &stats);
  if (!stored.ok()) return FailResumed(*frozen, stored.status());
  Result<std::vector<ChunkId>> index = mig::StoreIndex(*stored, *key, sink);
  if (!index.ok()) return FailResumed(*frozen, index.status());
  const double sent_ms = MillisSince(frozen_at);
  transport::MigrateRestoreRequest request{key->Secret(), std::move(*index)};
  Result<transport::MigrateRestoreReply> restored = (*client)->MigrateRestore(std::move(request));
  if (!restored.ok() && restored.status().code() == ErrorCode::kUnavailable) {
    // No answer: the target may have restored it. Never let it run twice.
    Status stopped = frozen->LeaveStopped();
    std::fprintf(stderr,
                 "sparetime: the session to %s broke during the restore; the process may run there now. "
                 "Process %d is left %s here: check %s's log, then `kill -CONT %d` or `kill -KILL %d`\n",
                 target->name.c_str(), o.pid, stopped.ok() ? "stopped" : "frozen", target->name.c_str(), o.pid, o.pid);
    return Fail(restored.status(), Stage::kWork);
  }
  if (!restored.ok()) return FailResumed(*frozen, restored.status().WithContext("restore on " + target->name));
  // The target runs the process: the source must go, or it would run twice.
  Status killed = frozen->Kill();
  const double frozen_ms = MillisSince(frozen_at);
  (*client)->Close().IgnoreError();
  if (!killed.ok()) return Fail(killed.WithContext("the process runs on " + target->name + " now, but the source "
                                                   "could not be killed; kill it by hand"),
                                Stage::kWork);
  if (g.json) {
    nlohmann::json out = {{"pid", image->pid},          {"comm", image->comm},
                          {"to", target->name},          {"target_pid", restored->pid},
                          {"pages", stats.pages},        {"zero_pages", stats.zero_pages},
                          {"unique_chunks", stats.unique_chunks}, {"sent_chunks", stats.new_chunks},
                          {"sent_bytes", stats.new_bytes}, {"dump_ms", dump_ms},
                          {"send_ms", sent_ms - dump_ms}, {"restore_ms", frozen_ms - sent_ms},
                          {"frozen_ms", frozen_ms}};
    std::cout << out.dump(2) << "\n";
  } else if (!g.quiet) {
    std::printf("migrated process %d (%s) to %s (pid %u there): %s in %llu pages, sent %llu chunks (%s sealed); "
                "frozen %.0f ms (dump %.0f, send %.0f, restore %.0f)\n",
                image->pid, image->comm.c_str(), target->name.c_str(), restored->pid,
                HumanBytes(stats.pages * mig::kPageSize).c_str(), static_cast<unsigned long long>(stats.pages),
                static_cast<unsigned long long>(stats.new_chunks), HumanBytes(stats.new_bytes).c_str(), frozen_ms,
                dump_ms, sent_ms - dump_ms, frozen_ms - sent_ms);
  }
  return kExitOk;
}

}  // namespace

MigrationCommands::MigrationCommands(CLI::App& app) : o_(std::make_unique<Options>()) {
  o_->checkpoint = app.add_subcommand("checkpoint", "save a running process into an image file");
  o_->checkpoint->add_option("pid", o_->pid, "the process (single-threaded; see docs/migration.md)")->required();
  o_->checkpoint->add_option("--to", o_->to, "the image file to write")->required();
  o_->checkpoint->add_flag("--leave-running", o_->leave_running,
                           "let the process run on after the checkpoint (default: leave it stopped)");
  o_->checkpoint->add_option("--store", o_->store, "migration store directory (default <state_dir>/migration)");

  o_->restore = app.add_subcommand("restore-process", "start a checkpointed process again, with its PID");
  o_->restore->add_option("file", o_->file, "an image file written by `sparetime checkpoint`")->required();
  o_->restore->add_flag("--wait", o_->wait, "wait for the process to exit and exit with its status");
  o_->restore->add_option("--store", o_->store, "migration store directory (default <state_dir>/migration)");

  o_->migrate = app.add_subcommand("migrate", "move a running process to another agent");
  o_->migrate->add_option("pid", o_->pid, "the process (single-threaded; see docs/migration.md)")->required();
  o_->migrate->add_option("--to", o_->host, "the agent to move it to (its name in the directory)")->required();
}

MigrationCommands::~MigrationCommands() = default;

std::optional<int> MigrationCommands::Run(const GlobalOptions& g) {
  if (*o_->checkpoint) return Checkpoint(g, *o_);
  if (*o_->restore) return RestoreProcess(g, *o_);
  if (*o_->migrate) return Migrate(g, *o_);
  return std::nullopt;
}

}  // namespace sparetime::cli
