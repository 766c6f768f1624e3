// SnapshotHold (see mount.h): a read hold on a mounted snapshot of another
// host's backups, renewed on a thread of its own while the mount lives.
#include <algorithm>
#include <condition_variable>
#include <map>
#include <thread>

#include "sparetime/base/mutex.h"
#include "sparetime/ops/mount.h"

namespace sparetime::ops {

class SnapshotHold::Impl {
 public:
  Impl(Backups& backups, std::string snapshot, std::chrono::seconds hold,
       std::function<void(const std::string&)> report)
      : backups_(backups), snapshot_(std::move(snapshot)), hold_(hold), report_(std::move(report)) {}

  ~Impl() EXCLUDES(mu_) {
    {
      MutexLock l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (!first_.empty()) backups_.HoldSnapshot(snapshot_, 0);  // the mount is gone: drop it
  }

  void Start() EXCLUDES(mu_) {
    first_ = Renew();
    if (first_.empty()) return;  // nothing to hold (a local repository, own backups)
    thread_ = std::thread([this] {
      // Renewed at a third of the hold time: two renewals may fail before
      // a peer lets the hold lapse.
      const auto every = std::max<std::chrono::milliseconds>(hold_ / 3, std::chrono::milliseconds(500));
      for (;;) {
        {
          MutexLock l(mu_);
          if (l.WaitFor(cv_, every, [this]() REQUIRES(mu_) { return stop_; })) return;
        }
        Renew();
      }
    });
  }

  // One round; reports peers whose answer changed since the last round.
  std::vector<std::pair<std::string, Status>> Renew() {
    std::vector<std::pair<std::string, Status>> results =
        backups_.HoldSnapshot(snapshot_, static_cast<uint32_t>(hold_.count()));
    for (const auto& [peer, status] : results) {
      bool& failing = failing_[peer];
      if (!status.ok() && !failing && report_) {
        report_("peer " + peer + " does not hold snapshot " + snapshot_ + " (" + status.message() +
                "): a prune of its owner could free chunks under the mount there (reads fall back "
                "to other replicas)");
      } else if (status.ok() && failing && report_) {
        report_("peer " + peer + " holds snapshot " + snapshot_ + " again");
      }
      failing = !status.ok();
    }
    return results;
  }

  Backups& backups_;
  const std::string snapshot_;
  const std::chrono::seconds hold_;
  const std::function<void(const std::string&)> report_;
  std::vector<std::pair<std::string, Status>> first_;
  std::map<std::string, bool> failing_;  // only the renewal thread touches it after Start
  Mutex mu_;
  std::condition_variable_any cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

SnapshotHold::SnapshotHold(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SnapshotHold::~SnapshotHold() = default;

std::unique_ptr<SnapshotHold> SnapshotHold::Start(Backups& backups, const std::string& snapshot,
                                                  std::chrono::seconds hold,
                                                  std::function<void(const std::string&)> report) {
  auto impl = std::make_unique<Impl>(backups, snapshot, hold, std::move(report));
  impl->Start();
  return std::unique_ptr<SnapshotHold>(new SnapshotHold(std::move(impl)));
}

const std::vector<std::pair<std::string, Status>>& SnapshotHold::first() const {
  return impl_->first_;
}

}  // namespace sparetime::ops
