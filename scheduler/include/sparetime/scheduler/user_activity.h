// UserActivitySensor: when someone last used the box, and where.
//
// Sources, newest wins:
//  - terminals: for each USER_PROCESS entry of /run/utmp, the access time of
//    /dev/<line> (a read of the tty, i.e. typing) — what `w` shows as IDLE;
//  - input devices: access and modification times of /dev/input/event*;
//  - an InputWatcher, when given: the last input it noticed (device or tty);
//  - systemd-logind, when given: IdleHint false means active now, true means
//    idle since IdleSinceHint.
// A box with none of these (no utmp, no input devices, no logind) has no
// user: last_input stays empty.
//
// Thread safety: not thread-safe if the IdleHintSource is not.
#ifndef SPARETIME_SCHEDULER_USER_ACTIVITY_H_
#define SPARETIME_SCHEDULER_USER_ACTIVITY_H_

#include <chrono>
#include <optional>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/scheduler/input_watcher.h"
#include "sparetime/scheduler/logind.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

struct UserActivitySample {
  std::optional<std::chrono::system_clock::time_point> last_input;
  std::string source;     // where it was: "pts/3", "input/event2", "logind"
  int sessions = 0;       // USER_PROCESS entries in utmp
  int input_devices = 0;  // /dev/input/event* nodes
  bool logind = false;    // logind answered

  // "last input on pts/3 12 s ago" or "no user sessions or input devices".
  std::string Describe(std::chrono::system_clock::time_point now) const;
};

struct UserActivityOptions {
  std::string utmp_path = "/run/utmp";
  IdleHintSource* logind = nullptr;             // not owned; may be null
  const InputWatcher* input_watcher = nullptr;  // not owned; may be null
};

class UserActivitySensor {
 public:
  UserActivitySensor(const SystemReader& reader, const Clock& clock,
                     UserActivityOptions options = {})
      : reader_(reader), clock_(clock), options_(std::move(options)) {}

  // kCorruption when utmp is not a sequence of struct utmp records; errors
  // from logind are passed on.
  Result<UserActivitySample> Read();

 private:
  Status ReadTerminals(UserActivitySample* sample) const;
  Status ReadInputDevices(UserActivitySample* sample) const;

  const SystemReader& reader_;
  const Clock& clock_;
  UserActivityOptions options_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_USER_ACTIVITY_H_
