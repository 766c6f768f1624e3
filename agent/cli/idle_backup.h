// `sparetime backup DEVICE --when-idle`: the backup as a job under the
// scheduler's JobController — it waits until the box is idle, pauses within
// a second of user input, resumes when the box is idle again, and runs at
// idle I/O class, nice 19 and SCHED_IDLE, optionally under a byte-rate limit.
// The wiring and the job are ops::IdleJobs and ops::BackupWhenIdle
// (agent/ops/idle_jobs.h), the same sparetimed uses; this file only turns
// the options into IdleSettings and prints the controller's events.
// State changes are printed as lines on stdout (flushed, so a pipe sees them
// as they happen); with --json the snapshot object gets an "idle" member.
//
// The idle policy is the directory's policy for this agent with
// sparetime.conf's [scheduler] settings when an agent config is in use
// (--config, or backups on the peers), else the built-in default
// (docs/scheduler.md); the options below adjust either.
#ifndef SPARETIME_AGENT_CLI_IDLE_BACKUP_H_
#define SPARETIME_AGENT_CLI_IDLE_BACKUP_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "sparetime/imaging/catalog.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/idle_jobs.h"

namespace sparetime::cli {

struct GlobalOptions;

struct IdleBackupOptions {
  bool when_idle = false;
  int64_t idle_after_seconds = -1;  // -1: the policy's idle minutes
  std::string bwlimit;              // bytes/s ("10M"); "" or "0": unlimited (every backup)
  bool ignore_load = false;         // decide on user input, power and windows only
  int64_t load_grace_seconds = -1;  // -1: the policy's (30 s, or [scheduler] load_grace)
  std::string utmp;                 // whose terminals count; "": config's, /run/utmp
};

// Registers --when-idle, --idle-after, --bwlimit, --ignore-load, --utmp.
void AddIdleBackupOptions(CLI::App* backup_cmd, IdleBackupOptions* o);

// --bwlimit in bytes per second (0: unlimited).
Result<uint64_t> ByteLimit(const IdleBackupOptions& o);

// Runs ops::Backup(backups, request) as a job under a JobController.
Result<Snapshot> BackupWhenIdle(const GlobalOptions& g, const IdleBackupOptions& o,
                                ops::Backups& backups, ops::BackupRequest request,
                                ops::IdleRunReport* report);

nlohmann::json IdleReportJson(const ops::IdleRunReport& report);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_IDLE_BACKUP_H_
