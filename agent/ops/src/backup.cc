// ops::Backup and RateGate (see backup.h).
#include "sparetime/ops/backup.h"

#include <algorithm>

#include "sparetime/base/token_bucket.h"
#include "sparetime/imaging/device.h"

namespace sparetime::ops {

struct RateGate::Bucket {
  Bucket(uint64_t rate, const Clock& clock, const std::atomic<bool>* cancel)
      : rate(rate), bucket(rate, 0, clock), cancel(cancel) {}
  const uint64_t rate;
  TokenBucket bucket;
  const std::atomic<bool>* const cancel;
};

RateGate::RateGate(uint64_t bytes_per_second, const Clock& clock,
                   const std::atomic<bool>* cancel)
    : bucket_(std::make_unique<Bucket>(bytes_per_second, clock, cancel)) {}
RateGate::~RateGate() = default;

Status RateGate::WaitWhilePaused(uint64_t bytes) {
  if (bucket_->rate == 0) return Status::Ok();
  // In slices of a tenth of a second's worth, so a stop request is seen.
  const uint64_t slice = std::max<uint64_t>(1, bucket_->rate / 10);
  while (bytes > 0) {
    if (bucket_->cancel != nullptr && bucket_->cancel->load()) {
      return Cancelled("interrupted while waiting for the byte-rate limit");
    }
    const uint64_t take = std::min(bytes, slice);
    bucket_->bucket.Acquire(take);
    bytes -= take;
  }
  return Status::Ok();
}

Result<Snapshot> Backup(Backups& backups, const BackupRequest& r) {
  const DeviceOpenOptions open_options{.direct_io = !r.buffered};
  ST_ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> device,
                      r.open_device ? r.open_device(r.device, open_options)
                                    : OpenBlockDevice(r.device, open_options));
  std::optional<RateGate> rate;
  BackupOptions options;
  options.chunk_size = backups.config().chunk_size;
  options.label = r.label;
  options.progress = r.progress;
  options.cancel = r.cancel;
  options.checkpoint_bytes = std::max<uint64_t>(1, r.checkpoint_bytes);
  options.pause = r.pause;
  if (options.pause == nullptr && r.bytes_per_second > 0) {
    options.pause = &rate.emplace(r.bytes_per_second, r.clock ? *r.clock : SystemClock(), r.cancel);
  }
  Catalog& catalog = backups.catalog();
  BackupEnv env{backups.codec(), backups.sink(), catalog, catalog};
  Result<Snapshot> snap = sparetime::Backup(*device, env, options);
  if (!snap.ok()) return snap.status().WithContext("backup of " + r.device);
  if (Status st = backups.Commit(); !st.ok()) {
    return st.WithContext("snapshot " + snap->id + " of " + r.device +
                          " is stored but its peers did not get the new snapshot list; run the "
                          "backup again");
  }
  return snap;
}

}  // namespace sparetime::ops
