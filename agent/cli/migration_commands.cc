// Process migration commands (see migration_commands.h).
//
// checkpoint: opens the migration store first (so a store problem never
// stops the process), freezes, dumps, stores the pages as chunks, writes
// FILE, then leaves the source stopped or running. Any failure resumes the
// source exactly as it was. restore-process: reads FILE and its chunks,
// restores the process as a child of this command, and with --wait reaps it
// and exits with its status (128 + signal number when a signal ended it).
// migrate: the protocol (preflight, connect, freeze, dump+send, restore,
// kill) is ops::Migrate (agent/ops/migrate.h), which sparetimed can call
// too; this file renders its report.
#include "migration_commands.h"

#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent_context.h"
#include "exit_codes.h"
#include "format.h"
#include "sparetime/base/fd.h"
#include "sparetime/config/config.h"
#include "sparetime/ops/migrate.h"
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

// The key and the chunk store of `dir`.
Result<LocalStore> OpenLocalStore(const std::string& dir) {
  LocalStore s;
  s.dir = dir;
  ST_ASSIGN_OR_RETURN(mig::MigrationKey key, ops::LoadMigrationKey(dir));
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

// The protocol is ops::Migrate (agent/ops/migrate.h); this renders it.
int Migrate(const GlobalOptions& g, const MigrationCommands::Options& o) {
  int exit_code = kExitOk;
  Result<AgentContext> ctx = LoadAgentContext(g, &exit_code);
  if (!ctx.ok()) return exit_code;
  const std::string& state_dir = ctx->config.state_dir;
  Result<transport::Identity> me = transport::Identity::Load(state_dir + "/identity.key");
  if (!me.ok()) {
    return Fail(me.status().WithContext("this agent's identity (is sparetimed set up here?)"),
                Stage::kConfig);
  }
  ops::MigrateRequest request;
  request.pid = o.pid;
  request.to = o.host;
  request.config = &ctx->config;
  request.view = &ctx->state.view;
  request.directory_source = ctx->state.source;
  request.identity = &*me;
  Result<ops::MigrateReport> r = ops::Migrate(request);
  if (!r.ok()) return Fail(r.status(), Stage::kWork);
  const mig::StoreStats& stats = r->stats;
  if (g.json) {
    nlohmann::json out = {{"pid", r->pid},          {"comm", r->comm},
                          {"to", r->to},            {"target_pid", r->target_pid},
                          {"pages", stats.pages},   {"zero_pages", stats.zero_pages},
                          {"unique_chunks", stats.unique_chunks}, {"sent_chunks", stats.new_chunks},
                          {"sent_bytes", stats.new_bytes}, {"dump_ms", r->dump_ms},
                          {"send_ms", r->send_ms},  {"restore_ms", r->restore_ms},
                          {"frozen_ms", r->frozen_ms}};
    std::cout << out.dump(2) << "\n";
  } else if (!g.quiet) {
    std::printf("migrated process %d (%s) to %s (pid %u there): %s in %llu pages, sent %llu chunks (%s sealed); "
                "frozen %.0f ms (dump %.0f, send %.0f, restore %.0f)\n",
                r->pid, r->comm.c_str(), r->to.c_str(), r->target_pid,
                HumanBytes(stats.pages * mig::kPageSize).c_str(), static_cast<unsigned long long>(stats.pages),
                static_cast<unsigned long long>(stats.new_chunks), HumanBytes(stats.new_bytes).c_str(),
                r->frozen_ms, r->dump_ms, r->send_ms, r->restore_ms);
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
