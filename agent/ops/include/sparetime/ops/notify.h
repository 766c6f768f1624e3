// ops::RunNotifyCommand / ops::Notifier: the admin's notify command
// (sparetime.conf [notify] command), run when a job fails and when a device
// becomes overdue, with SPARETIME_HOST, SPARETIME_DEVICE and
// SPARETIME_REASON in its environment (docs/deploy.md "Notify").
//
// Invariants: the command runs as `/bin/sh -c COMMAND` in a process group of
// its own, stdin /dev/null, stdout/stderr inherited (the journal); it is
// killed (SIGKILL to the whole group) once `timeout` has passed, so a hung
// command costs at most `timeout`. Notifier runs each command on a thread of
// its own and never blocks its caller: at most kMaxInFlight commands run at
// once, a notification beyond that is dropped with a logged warning; its
// destructor waits for the running ones (each bounded by the timeout).
#ifndef SPARETIME_OPS_NOTIFY_H_
#define SPARETIME_OPS_NOTIFY_H_

#include <chrono>
#include <functional>
#include <list>
#include <string>
#include <thread>

#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"

namespace sparetime::ops {

struct NotifyEvent {
  std::string host;
  std::string device;  // "" when the event is not about one device (verify, repair)
  std::string reason;  // e.g. "overdue: last success 4 d ago, max age 3 d"
};

// OK when the command exited 0; else kIoError (it could not be started),
// kUnavailable (killed at the timeout) or kFailedPrecondition (its exit
// status or signal), each saying which.
Status RunNotifyCommand(const std::string& command, const NotifyEvent& event,
                        std::chrono::milliseconds timeout);

class Notifier {
 public:
  static constexpr size_t kMaxInFlight = 4;
  // `log(line, failed)`: one line when a command fails or is dropped
  // (failed = true) and when it ran (false).
  Notifier(std::string command, std::chrono::milliseconds timeout,
           std::function<void(const std::string& line, bool failed)> log);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Returns at once. A no-op when the command is empty.
  void Notify(NotifyEvent event) EXCLUDES(mu_);

 private:
  struct Run {
    std::jthread thread;
    bool done = false;
  };
  void Reap() REQUIRES(mu_);

  const std::string command_;
  const std::chrono::milliseconds timeout_;
  const std::function<void(const std::string&, bool)> log_;
  Mutex mu_;
  std::list<Run> runs_ GUARDED_BY(mu_);
};

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_NOTIFY_H_
