// AgentStatus: what sparetimed publishes about itself in
// <state_dir>/status.json (rewritten atomically on every change and at least
// once per heartbeat) and `sparetime status` reads: directory reachability
// (fresh or cached, and why), registration, peers, the policy in force, and
// the scheduler's idle decision and jobs.
//
// Invariants: readers never see a half-written file (WriteFileAtomic); a
// file whose writer is gone is reported as such by the reader, not trusted.
#ifndef SPARETIME_CONFIG_STATUS_FILE_H_
#define SPARETIME_CONFIG_STATUS_FILE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/directory/fleet_state.h"

namespace sparetime::config {

// The scheduler's latest idle decision (see scheduler/idle_detector.h).
struct IdleStatus {
  bool known = false;  // false until the first decision
  bool idle = false;
  int64_t since = 0;  // unix seconds: when it last became idle or busy
  std::vector<std::string> reasons;
  std::vector<std::string> warnings;  // sensors that failed
};

// One scheduled job (see scheduler/job_controller.h).
struct JobStatus {
  std::string name;
  std::string state;  // queued | running | paused | succeeded | failed | cancelled
  int64_t since = 0;  // unix seconds
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  int pauses = 0;
  std::string detail;  // why paused / the error
};

// What this agent's peer store holds for one owner (issue 21 part 6).
struct HeldStatus {
  std::string owner;
  uint64_t chunks = 0;
  uint64_t live_bytes = 0;    // sealed bytes of the chunks held (the quota counts these)
  uint64_t record_bytes = 0;  // wrapped key + roots
  // Pack files on disk: live chunks plus released ones not yet repacked
  // (disk_bytes - live_bytes is what a repack could give back).
  uint64_t disk_bytes = 0;
  int64_t last_scrub = 0;     // Unix s a full scrub pass ended; 0 = never
  uint64_t scrub_passes = 0;
  bool scrub_in_progress = false;  // a pass stopped midway, resumes at its cursor
  uint64_t damaged = 0;       // damaged copies the scrub found (and dropped), all passes
};

struct AgentStatus {
  std::string agent;  // name
  int64_t pid = 0;           // getpid(): in sparetimed's own PID namespace
  std::string pid_namespace;  // "pid:[INODE]" of that namespace ("" unknown)
  // The NSpid line of /proc/self/status: the PID in each namespace from the
  // one of sparetimed's /proc down to its own (one value when they match).
  std::vector<int64_t> ns_pids;
  int64_t started = 0;  // unix seconds
  int64_t updated = 0;  // unix seconds

  // Directory.
  std::string directory_source;
  int64_t directory_fetched_at = 0;
  bool directory_from_cache = false;
  std::string directory_error;  // why the cache is used / why nothing is known
  std::vector<std::string> directory_warnings;

  // Registration (heartbeat).
  bool registered = false;
  int64_t registered_at = 0;
  std::string registration_error;
  // [agent] site disagrees with the entry's sparetimeSite (admin-owned).
  std::string site_warning;

  std::vector<std::string> peers;           // names of the live peers
  std::vector<std::string> policy_applied;  // DNs, lowest precedence first
  std::vector<std::string> policy_warnings;

  IdleStatus idle;
  std::vector<JobStatus> jobs;

  // The backup state (ops::BackupState), as published in the directory.
  // `backups_known` false: not computed yet (or an older sparetimed).
  bool backups_known = false;
  int64_t max_age_seconds = 0;  // the policy's sparetimeMaxAge
  std::vector<directory::DeviceBackupState> backups;
  directory::BackupHealth backup_health;
  std::string backup_state_error;  // why it could not be read ("" ok)
  std::vector<HeldStatus> held;  // by owner name
};

std::string StatusPath(const std::string& state_dir);
Status WriteStatus(const std::string& path, const AgentStatus& status);
// kNotFound when sparetimed never ran with this state directory.
Result<AgentStatus> ReadStatus(const std::string& path);
// The same from the file's text; `path` only names it in errors.
Result<AgentStatus> ParseStatus(std::string_view text, const std::string& path);

}  // namespace sparetime::config

#endif  // SPARETIME_CONFIG_STATUS_FILE_H_
