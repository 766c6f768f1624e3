// ops::RunNotifyCommand and ops::Notifier (notify.h).
#include "sparetime/ops/notify.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

extern char** environ;

namespace sparetime::ops {
namespace {

// The environment of the command: ours, minus any SPARETIME_HOST/DEVICE/
// REASON, plus the event's.
std::vector<std::string> Environment(const NotifyEvent& e) {
  std::vector<std::string> env;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    std::string_view v(*p);
    if (v.starts_with("SPARETIME_HOST=") || v.starts_with("SPARETIME_DEVICE=") ||
        v.starts_with("SPARETIME_REASON=")) {
      continue;
    }
    env.emplace_back(v);
  }
  env.push_back("SPARETIME_HOST=" + e.host);
  env.push_back("SPARETIME_DEVICE=" + e.device);
  env.push_back("SPARETIME_REASON=" + e.reason);
  return env;
}

std::string Seconds(std::chrono::milliseconds d) {
  return std::to_string(d.count() / 1000) + (d.count() % 1000 ? "." + std::to_string(d.count() % 1000 / 100) : "") + " s";
}

}  // namespace

Status RunNotifyCommand(const std::string& command, const NotifyEvent& event,
                        std::chrono::milliseconds timeout) {
  std::vector<std::string> env = Environment(event);
  std::vector<char*> envp;
  for (std::string& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: the timeout kills its children too
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Status(ErrorCode::kIoError, "notify command \"" + command +
                                           "\" could not be started: " + std::strerror(rc));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      return Status(ErrorCode::kIoError, std::string("notify command: waitpid: ") + std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return Unavailable("notify command \"" + command + "\" did not finish within " +
                         Seconds(timeout) + "; killed it (raise [notify] timeout or make the "
                         "command return sooner)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                      : "was killed by signal " + std::to_string(WTERMSIG(status));
  return Status(ErrorCode::kFailedPrecondition, "notify command \"" + command + "\" " + how);
}

Notifier::Notifier(std::string command, std::chrono::milliseconds timeout,
                   std::function<void(const std::string&, bool)> log)
    : command_(std::move(command)), timeout_(timeout), log_(std::move(log)) {}

Notifier::~Notifier() {
  std::list<Run> runs;
  {
    MutexLock l(mu_);
    runs.swap(runs_);
  }
  runs.clear();  // joins each (bounded by the timeout)
}

void Notifier::Reap() {
  for (auto it = runs_.begin(); it != runs_.end();) {
    it = it->done ? runs_.erase(it) : std::next(it);
  }
}

void Notifier::Notify(NotifyEvent event) {
  if (command_.empty()) return;
  MutexLock l(mu_);
  Reap();
  const std::string what = "notify (" + event.reason + (event.device.empty() ? "" : ", " + event.device) + ")";
  if (runs_.size() >= kMaxInFlight) {
    log_(what + ": dropped, " + std::to_string(kMaxInFlight) +
             " notify commands are still running (each is killed after " + Seconds(timeout_) + ")",
         true);
    return;
  }
  Run& run = runs_.emplace_back();
  run.thread = std::jthread([this, &run, what, event = std::move(event)] {
    Status s = RunNotifyCommand(command_, event, timeout_);
    if (s.ok()) {
      log_(what + ": command ran", false);
    } else {
      log_(what + ": " + s.message(), true);
    }
    MutexLock done(mu_);
    run.done = true;
  });
}

}  // namespace sparetime::ops
