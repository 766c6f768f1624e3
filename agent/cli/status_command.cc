// `sparetime status`: reads <state_dir>/status.json written by sparetimed and
// checks that its writer is still alive (kill(pid, 0)) before trusting it.
// Exit 0 when the agent runs, kExitUnavailable when it does not.
#include "status_command.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "directory_commands.h"
#include "exit_codes.h"
#include "format.h"
#include "sparetime/base/clock.h"
#include "sparetime/base/fd.h"
#include "sparetime/config/config.h"
#include "sparetime/config/status_file.h"

namespace sparetime::cli {
namespace {

bool ProcessAlive(int64_t pid) {
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

std::string ReadLinkOr(const std::string& path) {
  char buf[64] = {};
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// The last NSpid value of /proc/<pid>/status (its PID in its own namespace).
int64_t InnermostPid(const std::string& pid) {
  Result<std::string> text = ReadFileToString("/proc/" + pid + "/status");
  size_t at = text.ok() ? text->find("\nNSpid:") : std::string::npos;
  if (at == std::string::npos) return 0;
  std::istringstream line(text->substr(at + 7, text->find('\n', at + 1) - at - 7));
  int64_t last = 0;
  for (int64_t v; line >> v;) last = v;
  return last;
}

// sparetimed's PID as seen here: its own when it runs in our PID namespace;
// else the process in its namespace (status.json's pid_namespace) whose
// innermost PID is status.json's pid, found through our /proc; 0 when
// there is none (it is not running, or its namespace is not visible here).
int64_t PidHere(const config::AgentStatus& st) {
  if (st.pid_namespace.empty() || st.pid_namespace == ReadLinkOr("/proc/self/ns/pid")) return st.pid;
  auto matches = [&](const std::string& pid) {
    return ReadLinkOr("/proc/" + pid + "/ns/pid") == st.pid_namespace && InnermostPid(pid) == st.pid;
  };
  if (!st.ns_pids.empty() && matches(std::to_string(st.ns_pids.front()))) return st.ns_pids.front();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (matches(name)) return std::stoll(name);
  }
  return 0;
}

std::string Ago(int64_t then) { return Age(ToUnixSeconds(SystemClock().WallNow()) - then); }

std::string JoinReasons(const std::vector<std::string>& reasons) {
  std::string out;
  for (const auto& r : reasons) out += (out.empty() ? "" : "; ") + r;
  return out;
}

// The scheduler's part: the idle decision with its reasons, then each job.
void PrintIdle(const config::AgentStatus& st) {
  if (!st.idle.known) {
    std::printf("idle:       not decided yet\n");
  } else {
    std::printf("idle:       %s since %s: %s\n", st.idle.idle ? "yes" : "NO (busy)",
                Ago(st.idle.since).c_str(), JoinReasons(st.idle.reasons).c_str());
  }
  for (const auto& w : st.idle.warnings) std::printf("sensor:     %s\n", w.c_str());
  if (st.jobs.empty()) std::printf("jobs:       none\n");
  for (const auto& j : st.jobs) {
    std::string progress;
    if (j.bytes_total > 0) {
      progress = " " + std::to_string(j.bytes_done * 100 / j.bytes_total) + "% (" +
                 HumanBytes(j.bytes_done) + " of " + HumanBytes(j.bytes_total) + ")";
    }
    std::printf("job:        %s: %s%s since %s%s%s\n", j.name.c_str(), j.state.c_str(),
                progress.c_str(), Ago(j.since).c_str(), j.detail.empty() ? "" : ": ",
                j.detail.c_str());
  }
}

// The backup state sparetimed last read (ops::BackupState) — the same
// report it publishes in the directory and the metrics file.
void PrintBackups(const config::AgentStatus& st) {
  if (!st.backup_state_error.empty()) std::printf("backups:    UNKNOWN: %s\n", st.backup_state_error.c_str());
  if (!st.backups_known) return;
  const int64_t now = ToUnixSeconds(SystemClock().WallNow());
  for (const auto& d : st.backups) {
    const bool overdue = directory::IsOverdue(d, now, st.max_age_seconds);
    if (d.time <= 0) {
      std::printf("backup:     %s: never%s\n", d.device.c_str(), overdue ? ", OVERDUE" : "");
      continue;
    }
    std::printf("backup:     %s: last good %s (snapshot %.8s, %s, %llu s%s)%s\n", d.device.c_str(),
                Ago(d.time).c_str(), d.snapshot.c_str(), HumanBytes(d.size).c_str(),
                static_cast<unsigned long long>(d.seconds),
                d.forced ? ", run on a busy box because overdue" : "",
                overdue ? (", OVERDUE (max age " + Span(st.max_age_seconds) + ")").c_str() : "");
  }
  const auto& h = st.backup_health;
  std::printf("replicas:   %llu chunks on %u+ peers, %llu under-replicated; last verify %s\n",
              static_cast<unsigned long long>(h.healthy), h.replicas,
              static_cast<unsigned long long>(h.under_replicated),
              h.last_verify > 0 ? Ago(h.last_verify).c_str() : "never");
  if (!h.last_error.empty()) {
    std::printf("last error: %s: %s\n", Ago(h.last_error_time).c_str(), h.last_error.c_str());
  }
}

// What this agent's peer store holds for each owner (issue 21 part 6).
void PrintHeld(const config::AgentStatus& st) {
  if (st.held.empty()) std::printf("holds:      nothing for other agents\n");
  for (const auto& h : st.held) {
    std::string scrub = h.last_scrub == 0 ? std::string("never scrubbed")
                                          : "last scrub " + Ago(h.last_scrub) + " (" +
                                                std::to_string(h.scrub_passes) + " pass" +
                                                (h.scrub_passes == 1 ? "" : "es") + ")";
    if (h.scrub_in_progress) scrub += ", a pass under way";
    // Pack bytes beyond the live ones: record headers, and released chunks
    // a repack has not given back yet (the store knows no more than that).
    std::printf("holds:      %s: %llu live chunk(s), %s (+ %s key and roots); %s on disk "
                "(live and released-pending); %s; damage found: %llu\n",
                h.owner.c_str(), static_cast<unsigned long long>(h.chunks),
                HumanBytes(h.live_bytes).c_str(), HumanBytes(h.record_bytes).c_str(),
                HumanBytes(h.disk_bytes).c_str(), scrub.c_str(),
                static_cast<unsigned long long>(h.damaged));
  }
}

}  // namespace

int RunStatus(const GlobalOptions& g) {
  std::string config_path = g.config.empty() ? kDefaultConfigPath : g.config;
  Result<config::AgentConfig> cfg = config::LoadConfig(config_path);
  if (!cfg.ok()) return Fail(cfg.status(), Stage::kConfig);
  std::string path = config::StatusPath(cfg->state_dir);
  Result<config::AgentStatus> st = config::ReadStatus(path);
  const int64_t pid_here = st.ok() ? PidHere(*st) : 0;
  bool running = st.ok() && ProcessAlive(pid_here);
  if (g.json) {
    nlohmann::json out = {{"running", running}, {"status_file", path}};
    if (st.ok()) out["pid_here"] = pid_here;
    if (st.ok()) {
      Result<std::string> raw = ReadFileToString(path);
      if (raw.ok()) out["agent"] = nlohmann::json::parse(*raw, nullptr, false);
    } else {
      out["error"] = st.status().message();
    }
    std::cout << out.dump(2) << "\n";
    return running ? kExitOk : kExitUnavailable;
  }
  if (!st.ok()) {
    std::fprintf(stderr, "sparetime: sparetimed is not running here (%s); start it with "
                 "`systemctl start sparetime` or `sparetimed --config %s`\n",
                 st.status().message().c_str(), config_path.c_str());
    return kExitUnavailable;
  }
  // In another PID namespace its own PID (often 1) means nothing here.
  std::string pid_text = std::to_string(st->pid);
  if (pid_here != st->pid) {
    pid_text = (pid_here > 0 ? std::to_string(pid_here) + " here, " : std::string()) + "pid " +
               std::to_string(st->pid) + " in PID namespace " + st->pid_namespace;
  }
  if (!running) {
    std::printf("sparetimed: NOT RUNNING (pid %s gone; last status %s)\n", pid_text.c_str(),
                Ago(st->updated).c_str());
  } else {
    std::printf("sparetimed: running as %s (pid %s), status updated %s\n", st->agent.c_str(),
                pid_text.c_str(), Ago(st->updated).c_str());
  }
  if (st->directory_from_cache) {
    std::printf("directory:  %s UNREACHABLE (%s); using the copy read %s\n",
                st->directory_source.c_str(), st->directory_error.c_str(),
                Ago(st->directory_fetched_at).c_str());
  } else if (!st->directory_error.empty()) {
    std::printf("directory:  UNREACHABLE, nothing cached: %s\n", st->directory_error.c_str());
  } else {
    std::printf("directory:  %s, read %s\n", st->directory_source.c_str(),
                Ago(st->directory_fetched_at).c_str());
  }
  if (st->registered) {
    std::printf("registered: yes, heartbeat %s\n", Ago(st->registered_at).c_str());
  } else {
    std::printf("registered: NO: %s\n", st->registration_error.c_str());
  }
  if (!st->site_warning.empty()) std::printf("site:       %s\n", st->site_warning.c_str());
  std::string peers;
  for (const auto& p : st->peers) peers += (peers.empty() ? "" : ", ") + p;
  std::printf("peers:      %zu%s%s\n", st->peers.size(), peers.empty() ? "" : ": ",
              peers.c_str());
  std::string applied;
  for (const auto& p : st->policy_applied) applied += (applied.empty() ? "" : " < ") + p;
  std::printf("policy:     %s\n", applied.empty() ? "built-in defaults" : applied.c_str());
  for (const auto& w : st->policy_warnings) std::printf("warning:    %s\n", w.c_str());
  for (const auto& w : st->directory_warnings) std::printf("left out:   %s\n", w.c_str());
  PrintIdle(*st);
  PrintBackups(*st);
  PrintHeld(*st);
  return running ? kExitOk : kExitUnavailable;
}

}  // namespace sparetime::cli
