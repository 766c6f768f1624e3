// The freeze source: FIFREEZE the mounted filesystem for the time of the
// image (see ops/consistency.h).
//
// Invariants:
//   - The estimate is checked before FIFREEZE: a refused freeze froze nothing.
//   - Three things thaw, whichever comes first: Finish()/Explain()/the
//     destructor; the deadline thread (at max_freeze_seconds, or at once when
//     the caller's cancel flag is set); the watchdog child, when its pipe from
//     the agent reaches end-of-file (the agent died, even by SIGKILL) without
//     the "thawed" byte, or at the deadline plus a grace period when the
//     agent is alive but stuck.
//   - The agent writes the "thawed" byte right after its own FITHAW, so the
//     watchdog never thaws a freeze that is not ours any more.
//   - frozen_ and expired_ are guarded by mu_; FITHAW runs under mu_.
//
// A crashed agent's freeze: the watchdog child here is what this build has;
// the privileged helper of issue 23 will hold the freeze itself and thaw when
// its peer socket closes (docs/ARCHITECTURE.md "Consistent sources").
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "consistency_internal.h"
#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"

namespace sparetime::ops::detail {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr char kThawedByte = 'T';
constexpr int kWatchdogGraceMs = 2000;
constexpr uint64_t kProbeBytes = 4u << 20;  // per probe read
constexpr int kProbes = 4;

std::string Mb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

// Device read rate in bytes/s from a few O_DIRECT reads spread over it.
Result<double> MeasureReadRate(const std::string& device) {
  int fd = ::open(device.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + device + " to measure its read rate", errno);
  Fd owned(fd);
  const off_t size = ::lseek(fd, 0, SEEK_END);
  void* buf = nullptr;
  if (::posix_memalign(&buf, 4096, kProbeBytes) != 0) return Internal("out of memory");
  std::unique_ptr<void, decltype(&std::free)> hold(buf, &std::free);
  uint64_t bytes = 0;
  const auto start = SteadyClock::now();
  for (int i = 0; i < kProbes; ++i) {
    uint64_t at = size > static_cast<off_t>(kProbeBytes)
                      ? (static_cast<uint64_t>(size) - kProbeBytes) / kProbes * i
                      : 0;
    at &= ~uint64_t{4095};
    const ssize_t n = ::pread(fd, buf, kProbeBytes, static_cast<off_t>(at));
    if (n < 0) return ErrnoStatus("read " + device + " to measure its read rate", errno);
    bytes += static_cast<uint64_t>(n);
  }
  const double seconds =
      std::max(1e-4, std::chrono::duration<double>(SteadyClock::now() - start).count());
  return bytes / seconds;
}

// The watchdog child: waits for the "thawed" byte; on end-of-file (the agent
// died) or when the deadline plus grace passes, thaws. Async-signal-safe
// calls only (the agent may have other threads).
[[noreturn]] void WatchdogMain(int mount_fd, int pipe_fd, int timeout_ms) {
  ::signal(SIGINT, SIG_IGN);  // a Ctrl-C for the agent must not kill its thaw
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  const int lo = std::min(mount_fd, pipe_fd), hi = std::max(mount_fd, pipe_fd);
  if (lo > 3) ::close_range(3, lo - 1, 0);
  if (hi > lo + 1) ::close_range(lo + 1, hi - 1, 0);
  ::close_range(hi + 1, ~0U, 0);
  struct pollfd p = {pipe_fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r > 0) {
    char c = 0;
    ssize_t n;
    do {
      n = ::read(pipe_fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && c == kThawedByte) ::_exit(0);
  }
  ::ioctl(mount_fd, FITHAW, 0);
  ::_exit(0);
}

class FreezeSource final : public ConsistentSource {
 public:
  FreezeSource(std::string device, DeviceMount mount, uint32_t max_seconds,
               const std::atomic<bool>* cancel)
      : device_(std::move(device)), mount_(std::move(mount)), max_seconds_(max_seconds),
        relay_(cancel) {}

  ~FreezeSource() override { (void)Release(); }

  Status Start() {
    const int mfd = ::open(mount_.mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0) return ErrnoStatus("open " + mount_.mount_point + " to freeze it", errno);
    mount_fd_ = Fd(mfd);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus("pipe for the freeze watchdog", errno);
    Fd read_end(p[0]);
    to_watchdog_ = Fd(p[1]);
    const int timeout_ms = static_cast<int>(max_seconds_) * 1000 + kWatchdogGraceMs;
    const pid_t pid = ::fork();
    if (pid < 0) return ErrnoStatus("fork the freeze watchdog", errno);
    if (pid == 0) WatchdogMain(mount_fd_.get(), read_end.get(), timeout_ms);
    watchdog_ = pid;
    read_end = Fd();
    deadline_ = SteadyClock::now() + std::chrono::seconds(max_seconds_);
    {
      MutexLock l(mu_);
      if (::ioctl(mount_fd_.get(), FIFREEZE, 0) != 0) {
        const int err = errno;
        Status st = ErrnoStatus("FIFREEZE " + mount_.mount_point, err);
        if (err == EBUSY) {
          st = FailedPrecondition(mount_.mount_point +
                                  " is already frozen (by another backup or fsfreeze); thaw it "
                                  "(fsfreeze -u) or wait, then run the backup again");
        } else if (err == EOPNOTSUPP || err == ENOTTY || err == EINVAL) {
          st = FailedPrecondition(mount_.mount_point + " (" + mount_.fs_type +
                                  ") cannot be frozen; use --consistency crash (read live, "
                                  "recorded as inconsistent) or snapshot (LVM)");
        }
        return st;
      }
      frozen_ = true;
    }
    deadline_thread_ = std::thread([this] { WatchDeadline(); });
    return Status::Ok();
  }

  const std::string& read_path() const override { return device_; }
  const char* taken() const override { return kTakenFrozen; }
  const std::atomic<bool>* cancel_flag() const override { return relay_.flag(); }

  Status Finish() override {
    Status released = Release();
    if (expired()) return DeadlineError();
    return released;
  }

  Status Explain(const Status& error) override {
    Status released = Release();
    if (expired()) return DeadlineError();
    if (!released.ok()) return released;
    return error;
  }

 private:
  bool expired() {
    MutexLock l(mu_);
    return expired_;
  }

  Status DeadlineError() const {
    return FailedPrecondition(
        "the freeze of " + mount_.mount_point + " for the backup of " + device_ +
        " reached its maximum of " + std::to_string(max_seconds_) +
        " s before the image was read, so it was thawed and no snapshot was recorded; raise "
        "sparetimeMaxFreezeSeconds (or --max-freeze), or use --consistency snapshot (LVM)");
  }

  // Thaws (once) and tells the watchdog. Returns FITHAW's error.
  Status Thaw() REQUIRES(mu_) {
    if (!frozen_) return Status::Ok();
    frozen_ = false;
    Status st;
    if (::ioctl(mount_fd_.get(), FITHAW, 0) != 0 && errno != EINVAL) {
      st = ErrnoStatus("FITHAW " + mount_.mount_point +
                           "; thaw it by hand with `fsfreeze -u " + mount_.mount_point + "`",
                       errno);
    }
    const char b = kThawedByte;
    if (to_watchdog_.get() >= 0) (void)!::write(to_watchdog_.get(), &b, 1);
    return st;
  }

  void WatchDeadline() {
    MutexLock l(mu_);
    while (!stop_) {
      if (relay_.Poll() && relay_.outer_set()) {
        (void)Thaw();  // SIGINT/SIGTERM: thaw now; the imager stops on the flag
        return;
      }
      if (SteadyClock::now() >= deadline_) {
        if (frozen_) expired_ = true;
        (void)Thaw();
        relay_.Set();
        return;
      }
      l.WaitFor(cv_, std::chrono::milliseconds(50), [this]() REQUIRES(mu_) { return stop_; });
    }
  }

  Status Release() {
    Status st;
    {
      MutexLock l(mu_);
      stop_ = true;
      st = Thaw();
    }
    cv_.notify_all();
    if (deadline_thread_.joinable()) deadline_thread_.join();
    if (to_watchdog_.get() >= 0) {
      const char b = kThawedByte;
      (void)!::write(to_watchdog_.get(), &b, 1);
      to_watchdog_ = Fd();
    }
    if (watchdog_ > 0) {
      int status = 0;
      while (::waitpid(watchdog_, &status, 0) < 0 && errno == EINTR) {
      }
      watchdog_ = -1;
    }
    return st;
  }

  const std::string device_;
  const DeviceMount mount_;
  const uint32_t max_seconds_;
  CancelRelay relay_;
  Fd mount_fd_;
  Fd to_watchdog_;
  pid_t watchdog_ = -1;
  SteadyClock::time_point deadline_;
  std::thread deadline_thread_;
  Mutex mu_;
  std::condition_variable_any cv_;
  bool frozen_ GUARDED_BY(mu_) = false;
  bool expired_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
};

}  // namespace

Result<std::unique_ptr<ConsistentSource>> MakeFreezeSource(const std::string& device,
                                                           const DeviceMount& mount,
                                                           const ConsistencyOptions& options,
                                                           const std::atomic<bool>* cancel) {
  if (options.max_freeze_seconds == 0) {
    return InvalidArgument("the maximum freeze time is 0 s; give 1 or more seconds");
  }
  struct statfs sf;
  if (::statfs(mount.mount_point.c_str(), &sf) != 0) {
    return ErrnoStatus("statfs " + mount.mount_point, errno);
  }
  const double used =
      static_cast<double>(sf.f_blocks - sf.f_bfree) * static_cast<double>(sf.f_frsize);
  ST_ASSIGN_OR_RETURN(double rate, MeasureReadRate(device));
  if (options.rate_limit > 0) rate = std::min(rate, static_cast<double>(options.rate_limit));
  const double estimate = used / rate;
  if (estimate > options.max_freeze_seconds) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", estimate);
    return FailedPrecondition(
        "freezing " + mount.mount_point + " for the backup of " + device + " would take about " +
        secs + " s (" + Mb(used) + " used at " + Mb(rate) + "/s), more than the maximum of " +
        std::to_string(options.max_freeze_seconds) +
        " s; nothing was frozen; raise sparetimeMaxFreezeSeconds (or --max-freeze), lift the "
        "rate limit, or use --consistency snapshot (LVM) or crash");
  }
  auto source = std::make_unique<FreezeSource>(device, mount, options.max_freeze_seconds, cancel);
  ST_RETURN_IF_ERROR(source->Start());
  return std::unique_ptr<ConsistentSource>(std::move(source));
}

}  // namespace sparetime::ops::detail
