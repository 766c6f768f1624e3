// InputWatcher: notices keyboard, mouse and terminal input as it happens, so
// work can back off within a second instead of at the next poll.
//
//  - Input devices: every /dev/input/event* is opened (through SystemReader,
//    so tests can use FIFOs in a fake tree) O_RDONLY | O_NONBLOCK | O_CLOEXEC
//    and poll(2)ed; queued events are read and discarded. Each reader of an
//    evdev node gets its own copy of the events: the X server or compositor
//    is not affected. Devices that go away (POLLHUP, ENODEV) are closed.
//  - Terminals: the tty of each logged-in user (USER_PROCESS in utmp) gets an
//    inotify IN_ACCESS watch, which fires when the shell reads what was typed
//    (output does not count).
// /dev/input and utmp are rescanned when a device goes away and every 5 s,
// for hot-plugged devices and new logins. Nodes that cannot be opened or
// watched (EACCES) are skipped; a bad utmp is reported by the user-activity
// sensor, here it only means no terminals are watched.
//
// Thread safety: Wait() must be called from one thread at a time (it owns
// the descriptors); Wake() and LastActivity() may be called from any thread.
#ifndef SPARETIME_SCHEDULER_INPUT_WATCHER_H_
#define SPARETIME_SCHEDULER_INPUT_WATCHER_H_

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

class InputWatcher {
 public:
  struct Activity {
    std::chrono::system_clock::time_point when;  // Clock::WallNow() when noticed
    std::string where;                           // "input/event3" or "pts/1"
  };

  // Opens the devices and watches the terminals present now (none is fine:
  // a headless box).
  static Result<std::unique_ptr<InputWatcher>> Create(const SystemReader& reader,
                                                      const Clock& clock,
                                                      std::string utmp_path = "/run/utmp");
  InputWatcher(const InputWatcher&) = delete;
  InputWatcher& operator=(const InputWatcher&) = delete;

  // Blocks until input arrives, Wake() is called, or `timeout` passes.
  // Returns true when input arrived; it is then LastActivity().
  Result<bool> Wait(std::chrono::milliseconds timeout);
  // Makes a current or the next Wait() return (false) promptly.
  void Wake();
  // The last input seen by Wait(), if any.
  std::optional<Activity> LastActivity() const;
  // Devices open and terminals watched now. Wait() thread only.
  size_t device_count() const { return devices_.size(); }
  size_t terminal_count() const { return terminals_.size(); }

 private:
  struct Device {
    std::string path;  // "/dev/input/event3"
    Fd fd;
  };
  InputWatcher(const SystemReader& reader, const Clock& clock, std::string utmp_path, Fd wake,
               Fd inotify);
  void Rescan();
  void RescanDevices();
  void RescanTerminals();
  // Reads everything queued on a device; false when it went away.
  static bool Drain(const Device& device, bool* got_input);
  // Reads the inotify events; the line typed on, or "" when none.
  std::string DrainTerminals();

  const SystemReader& reader_;
  const Clock& clock_;
  const std::string utmp_path_;
  Fd wake_;     // eventfd
  Fd inotify_;  // IN_ACCESS watches on terminals
  std::vector<Device> devices_;
  std::map<int, std::string> terminals_;  // watch descriptor -> line ("pts/1")
  std::chrono::steady_clock::time_point next_rescan_;
  mutable Mutex mu_;
  std::optional<Activity> last_activity_ GUARDED_BY(mu_);
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_INPUT_WATCHER_H_
