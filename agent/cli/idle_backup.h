// `sparetime backup DEVICE --when-idle`: the backup as a job under the
// scheduler's JobController — it waits until the box is idle, pauses within
// a second of user input, resumes when the box is idle again, and runs at
// idle I/O class, nice 19 and SCHED_IDLE, optionally under a byte-rate limit.
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
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"

namespace sparetime::cli {

struct GlobalOptions;

struct IdleBackupOptions {
  bool when_idle = false;
  int64_t idle_after_seconds = -1;  // -1: the policy's idle minutes
  std::string bwlimit;              // bytes/s ("10M"); "" or "0": unlimited
  bool ignore_load = false;         // decide on user input, power and windows only
  int64_t load_grace_seconds = -1;  // -1: the policy's (30 s, or [scheduler] load_grace)
  std::string utmp;                 // whose terminals count; "": config's, /run/utmp
};

// What happened while scheduling, for the summary and the JSON.
struct IdleRunReport {
  int pauses = 0;
  std::string priority;        // "I/O class idle, nice 19, SCHED_IDLE"
  double waited_seconds = 0;   // until the box was first idle
};

// Registers --when-idle, --idle-after, --bwlimit, --ignore-load, --utmp.
void AddIdleBackupOptions(CLI::App* backup_cmd, IdleBackupOptions* o);

// Runs Backup(device, env, options) as a job under a JobController.
Result<Snapshot> BackupWhenIdle(const GlobalOptions& g, const IdleBackupOptions& o,
                                BlockDevice& device, const BackupEnv& env, BackupOptions options,
                                IdleRunReport* report);

nlohmann::json IdleReportJson(const IdleRunReport& report);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_IDLE_BACKUP_H_
