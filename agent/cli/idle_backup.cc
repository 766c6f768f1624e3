// BackupWhenIdle: builds the idle policy from the options, watches input
// (/dev/input, the terminals of the users in --utmp), runs the backup as the
// controller's one job and prints its state changes.
#include "idle_backup.h"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "agent_context.h"
#include "commands.h"
#include "format.h"
#include "open_backups.h"
#include "sparetime/base/clock.h"
#include "sparetime/config/config.h"

namespace sparetime::cli {
namespace {

using scheduler::ControllerEvent;
using scheduler::JobInfo;
using scheduler::JobState;

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

std::string Progress(const JobInfo& job) {
  if (job.bytes_total == 0) return "at 0%";
  return "at " + std::to_string(job.bytes_done * 100 / job.bytes_total) + "% (" +
         HumanBytes(job.bytes_done) + " of " + HumanBytes(job.bytes_total) + ")";
}

// One line per state change on stdout, flushed at once.
void PrintEvent(const ControllerEvent& e) {
  std::string line;
  if (e.kind == ControllerEvent::Kind::kDecision) {
    line = std::string(e.decision.idle ? "idle: " : "busy: ") + Join(e.decision.reasons);
  } else {
    const JobInfo& job = e.job;
    line = job.name + ": " + std::string(JobStateName(job.state));
    if (job.state == JobState::kRunning && job.pauses == 0) {
      line += " (" + job.priority + ")";
    } else if (job.state == JobState::kRunning) {
      line += " again " + Progress(job);
    } else if (job.state == JobState::kPaused) {
      line += " " + Progress(job) + ": " + job.detail;
    }
  }
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The idle policy, byte rate and utmp file: the built-in defaults, or with
// an agent config the directory's policy for this agent plus sparetime.conf's
// [scheduler]; then the command line's options on top.
Result<ops::IdleSettings> SettingsFor(const GlobalOptions& g, const IdleBackupOptions& o,
                                      int* exit_code) {
  ops::IdleSettings s;
  if (UsesAgentConfig(g)) {
    ST_ASSIGN_OR_RETURN(AgentContext ctx, LoadAgentContext(g, exit_code));
    s = ops::AgentIdleSettings(ctx.config, ctx.state.view);
  }
  scheduler::IdlePolicy& p = s.policy;
  if (o.idle_after_seconds >= 0) {
    // Tests and impatient people: the hysteresis never outlasts the idle time.
    p.idle_after = std::chrono::seconds(o.idle_after_seconds);
    p.settle = std::min(p.settle, p.idle_after);
    p.resume_delay = std::min(p.resume_delay, p.idle_after);
  }
  if (o.load_grace_seconds >= 0) p.load_grace = std::chrono::seconds(o.load_grace_seconds);
  if (o.ignore_load) p.IgnoreLoad();
  ST_RETURN_IF_ERROR(p.Validate());
  if (!o.bwlimit.empty()) {
    ST_ASSIGN_OR_RETURN(s.bytes_per_second, ByteLimit(o));
  }
  if (!o.utmp.empty()) s.utmp = o.utmp;
  return s;
}

}  // namespace

void AddIdleBackupOptions(CLI::App* cmd, IdleBackupOptions* o) {
  cmd->add_flag("--when-idle", o->when_idle,
                "wait until the box is idle, pause on user activity, run at idle priority");
  cmd->add_option("--idle-after", o->idle_after_seconds,
                  "with --when-idle: seconds without user input before the box counts as idle "
                  "(default: the policy's sparetimeIdleMinutes, 15 min built in)")
      ->check(CLI::Range(0, 7 * 24 * 3600));
  cmd->add_option("--bwlimit", o->bwlimit,
                  "read at most this many bytes per second from the device (e.g. 20M), with or "
                  "without --when-idle")
      ->check([](const std::string& v) -> std::string {
        Result<uint64_t> r = config::ParseSize(v);
        return r.ok() ? "" : r.status().message();
      });
  cmd->add_flag("--ignore-load", o->ignore_load,
                "with --when-idle: decide on user input, power and windows only, not on CPU, "
                "pressure, disk or network load");
  cmd->add_option("--load-grace", o->load_grace_seconds,
                  "with --when-idle: seconds others' CPU, pressure, disk or network load may "
                  "stay over its threshold before the job backs off (default: [scheduler] "
                  "load_grace of the agent config, else 30)")
      ->check(CLI::Range(0, 24 * 3600));
  cmd->add_option("--utmp", o->utmp,
                  "with --when-idle: the utmp file whose logged-in terminals count as user input "
                  "(default: [scheduler] utmp of the agent config, else /run/utmp)");
}

Result<uint64_t> ByteLimit(const IdleBackupOptions& o) {
  if (o.bwlimit.empty()) return uint64_t{0};
  return config::ParseSize(o.bwlimit);
}

Result<Snapshot> BackupWhenIdle(const GlobalOptions& g, const IdleBackupOptions& o,
                                ops::Backups& backups, ops::BackupRequest request,
                                ops::IdleRunReport* report) {
  int ignored = 0;  // the caller prints the error
  ST_ASSIGN_OR_RETURN(ops::IdleSettings settings, SettingsFor(g, o, &ignored));
  auto warn = [&g](const ops::Warning& w) { PrintWarnings(g, {w}); };
  ST_ASSIGN_OR_RETURN(
      std::unique_ptr<ops::IdleJobs> jobs,
      ops::IdleJobs::Create(std::move(settings), SystemClock(),
                            g.json || g.quiet ? nullptr : PrintEvent, warn));
  static const std::atomic<bool> kNever{false};
  return ops::BackupWhenIdle(backups, std::move(request), *jobs,
                             g.interrupted ? *g.interrupted : kNever, report);
}

nlohmann::json IdleReportJson(const ops::IdleRunReport& report) {
  return {{"pauses", report.pauses},
          {"priority", report.priority},
          {"waited_seconds", report.waited_seconds}};
}

}  // namespace sparetime::cli
