// InputWatcher: poll(2) over /dev/input/event*, an inotify descriptor with
// IN_ACCESS watches on users' terminals, and a wake eventfd.
// Invariants: devices_ holds only open, pollable descriptors; a device is
// dropped as soon as it reports hang-up or an error, and picked up again by
// the next rescan if it still exists. terminals_ holds exactly the live
// watches (removed ones are erased on IN_IGNORED or by the rescan).
#include "sparetime/scheduler/input_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "user_terminals.h"

namespace sparetime::scheduler {
namespace {

constexpr std::string_view kInputDir = "/dev/input";
constexpr std::chrono::seconds kRescanInterval(5);

}  // namespace

Result<std::unique_ptr<InputWatcher>> InputWatcher::Create(const SystemReader& reader,
                                                           const Clock& clock,
                                                           std::string utmp_path) {
  Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake.valid()) return ErrnoStatus("eventfd for the input watcher", errno);
  Fd inotify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify.valid()) return ErrnoStatus("inotify_init1 for the input watcher", errno);
  std::unique_ptr<InputWatcher> w(
      new InputWatcher(reader, clock, std::move(utmp_path), std::move(wake), std::move(inotify)));
  w->Rescan();
  return w;
}

InputWatcher::InputWatcher(const SystemReader& reader, const Clock& clock, std::string utmp_path,
                           Fd wake, Fd inotify)
    : reader_(reader),
      clock_(clock),
      utmp_path_(std::move(utmp_path)),
      wake_(std::move(wake)),
      inotify_(std::move(inotify)) {}

void InputWatcher::Rescan() {
  next_rescan_ = clock_.MonoNow() + kRescanInterval;
  RescanDevices();
  RescanTerminals();
}

void InputWatcher::RescanDevices() {
  if (!reader_.Exists(kInputDir)) return;
  Result<std::vector<std::string>> names = reader_.ListDir(kInputDir);
  if (!names.ok()) return;  // unreadable /dev/input: no devices to watch
  for (const std::string& name : *names) {
    if (name.rfind("event", 0) != 0) continue;
    std::string path = std::string(kInputDir) + "/" + name;
    bool open = std::any_of(devices_.begin(), devices_.end(),
                            [&](const Device& d) { return d.path == path; });
    if (open) continue;
    Result<Fd> fd = reader_.OpenForPolling(path);
    if (!fd.ok()) continue;  // not readable by us (EACCES) or gone again
    devices_.push_back(Device{path, std::move(fd).value()});
  }
}

void InputWatcher::RescanTerminals() {
  Result<std::optional<std::vector<std::string>>> lines = UserTerminals(reader_, utmp_path_);
  std::set<int> live;
  if (lines.ok() && lines->has_value()) {
    for (const std::string& line : **lines) {
      // The same inode gives the same watch descriptor: re-adding is harmless.
      int wd =
          ::inotify_add_watch(inotify_.get(), reader_.HostPath("/dev/" + line).c_str(), IN_ACCESS);
      if (wd < 0) continue;  // stale utmp entry, or not ours to watch
      terminals_[wd] = line;
      live.insert(wd);
    }
  }
  for (auto it = terminals_.begin(); it != terminals_.end();) {
    if (live.count(it->first) != 0) {
      ++it;
      continue;
    }
    ::inotify_rm_watch(inotify_.get(), it->first);  // the session ended
    it = terminals_.erase(it);
  }
}

bool InputWatcher::Drain(const Device& device, bool* got_input) {
  char buf[4096];  // 170 struct input_event
  for (;;) {
    ssize_t n = ::read(device.fd.get(), buf, sizeof buf);
    if (n > 0) {
      *got_input = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // 0 = writer gone (FIFO), ENODEV = unplugged, other errors likewise
  }
}

std::string InputWatcher::DrainTerminals() {
  std::string where;
  alignas(struct inotify_event) char buf[4096];
  for (;;) {
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return where;  // EAGAIN: all read
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
      auto it = terminals_.find(ev->wd);
      if (it != terminals_.end()) {
        if ((ev->mask & IN_ACCESS) && where.empty()) where = it->second;
        if (ev->mask & IN_IGNORED) terminals_.erase(it);  // the tty went away
      }
      off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
    }
  }
}

Result<bool> InputWatcher::Wait(std::chrono::milliseconds timeout) {
  if (clock_.MonoNow() >= next_rescan_) Rescan();
  std::vector<pollfd> fds;
  fds.push_back(pollfd{wake_.get(), POLLIN, 0});
  fds.push_back(pollfd{inotify_.get(), POLLIN, 0});
  for (const Device& d : devices_) fds.push_back(pollfd{d.fd.get(), POLLIN, 0});
  constexpr size_t kFirstDevice = 2;

  auto deadline = std::chrono::steady_clock::now() + timeout;
  int ready = 0;
  for (;;) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(0, left.count())));
    if (ready >= 0) break;
    if (errno != EINTR) return ErrnoStatus("poll on input devices and terminals", errno);
  }
  if (ready == 0) return false;

  if (fds[0].revents & POLLIN) {
    uint64_t count = 0;
    while (::read(wake_.get(), &count, sizeof count) < 0 && errno == EINTR) {
    }
  }
  std::string where = (fds[1].revents & POLLIN) ? DrainTerminals() : std::string();
  bool lost_device = false;
  std::vector<Device> kept;
  for (size_t i = 0; i < devices_.size(); ++i) {
    short ev = fds[i + kFirstDevice].revents;
    bool alive = true;
    bool got_input = false;
    if (ev & POLLIN) alive = Drain(devices_[i], &got_input);
    if (ev & (POLLHUP | POLLERR | POLLNVAL)) alive = false;
    if (got_input && where.empty()) where = devices_[i].path.substr(std::string("/dev/").size());
    if (alive) {
      kept.push_back(std::move(devices_[i]));
    } else {
      lost_device = true;
    }
  }
  devices_ = std::move(kept);
  if (lost_device) Rescan();
  if (where.empty()) return false;
  MutexLock lock(mu_);
  last_activity_ = Activity{clock_.WallNow(), std::move(where)};
  return true;
}

void InputWatcher::Wake() {
  uint64_t one = 1;
  while (::write(wake_.get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
}

std::optional<InputWatcher::Activity> InputWatcher::LastActivity() const {
  MutexLock lock(mu_);
  return last_activity_;
}

}  // namespace sparetime::scheduler
