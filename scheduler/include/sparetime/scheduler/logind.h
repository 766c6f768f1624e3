// IdleHintSource: systemd-logind's idle hint, aggregated over all sessions
// (org.freedesktop.login1.Manager IdleHint / IdleSinceHint on the system
// bus). Desktop environments set it after their own idle timeout; logind
// derives it for tty sessions from the tty's access time.
//
// This is the one sensor input that does not go through SystemReader: it
// needs a running system bus and logind, which tests cannot provide, so the
// user-activity sensor takes it as an interface and tests pass a fixed
// value. NewLogindIdleHintSource() is the real one (sd-bus from libsystemd);
// without a reachable system bus or logind it reports "unavailable".
//
// Thread safety: implementations need not be thread-safe.
#ifndef SPARETIME_SCHEDULER_LOGIND_H_
#define SPARETIME_SCHEDULER_LOGIND_H_

#include <chrono>
#include <memory>
#include <optional>

#include "sparetime/base/status.h"

namespace sparetime::scheduler {

struct IdleHint {
  bool idle = false;
  // When the hint last changed (wall clock); meaningful when idle.
  std::chrono::system_clock::time_point since;
};

class IdleHintSource {
 public:
  virtual ~IdleHintSource() = default;
  // nullopt when logind is not reachable (no system bus, not systemd).
  virtual Result<std::optional<IdleHint>> Read() = 0;
};

// Connects lazily on each Read() that has no connection; drops the
// connection after an error so the next Read() reconnects.
std::unique_ptr<IdleHintSource> NewLogindIdleHintSource();

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_LOGIND_H_
