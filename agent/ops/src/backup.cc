// ops::Backup and RateGate (see backup.h).
//
// Invariants (the consistency step, ops/consistency.h): the source is
// prepared after the device opened and released on every path before Backup
// returns; a snapshot is recorded only after ConsistentSource::Finish()
// succeeded (so a freeze past its deadline or a full LVM snapshot records
// nothing); a frozen or snapshotted image never resumes another run's
// journaled chunks (they were read at another moment). A thin LV's image
// takes from its base snapshot only the chunks thin_delta calls unchanged;
// the new thin snapshot becomes the base only after the image is committed.
#include "sparetime/ops/backup.h"

#include <algorithm>
#include <optional>

#include "sparetime/base/token_bucket.h"
#include "sparetime/imaging/chunker.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/fs_allocation.h"
#include "sparetime/ops/thin_delta.h"

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

namespace {

// Reads one device (an LVM snapshot) under another's identity (its origin),
// so the snapshot is the origin's in the catalog and its device key.
class ReadUnderIdentity final : public BlockDevice {
 public:
  ReadUnderIdentity(std::unique_ptr<BlockDevice> origin, std::unique_ptr<BlockDevice> read)
      : origin_(std::move(origin)), read_(std::move(read)) {}
  const DeviceIdentity& identity() const override { return origin_->identity(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) override {
    if (!read_) return FailedPrecondition("the snapshot device was closed before its image was read");
    return read_->ReadAt(offset, buf);
  }
  void DoneWith(uint64_t offset, uint64_t len) override {
    if (read_) read_->DoneWith(offset, len);
  }
  uint64_t NextDataOffset(uint64_t offset) override {
    return read_ ? read_->NextDataOffset(offset) : offset;
  }
  // Closes the snapshot: LVM refuses to remove an LV that is still open.
  void CloseRead() { read_.reset(); }

 private:
  std::unique_ptr<BlockDevice> origin_, read_;
};

// The journal, without resume for a point-in-time image.
class ConsistentJournal final : public BackupJournal {
 public:
  ConsistentJournal(BackupJournal& inner, bool resume) : inner_(inner), resume_(resume) {}
  Result<std::optional<JobProgress>> LoadProgress(const std::string& job_key) override {
    if (!resume_) return std::optional<JobProgress>();
    return inner_.LoadProgress(job_key);
  }
  Status RecordProgress(const std::string& job_key,
                        std::span<const std::pair<uint64_t, ChunkId>> done) override {
    return inner_.RecordProgress(job_key, done);
  }
  Status ClearProgress(const std::string& job_key) override {
    return inner_.ClearProgress(job_key);
  }

 private:
  BackupJournal& inner_;
  const bool resume_;
};

// Records a snapshot only once the consistency step says the image is good,
// and says how it was taken.
class ConsistentRecorder final : public SnapshotRecorder {
 public:
  ConsistentRecorder(SnapshotRecorder& inner, ConsistentSource& source,
                     ReadUnderIdentity* snapshot_reader)
      : inner_(inner), source_(source), snapshot_reader_(snapshot_reader) {}
  Result<Snapshot> AddSnapshot(Snapshot snapshot) override {
    // The image is read: close the snapshot so Finish() can remove it.
    if (snapshot_reader_ != nullptr) snapshot_reader_->CloseRead();
    ST_RETURN_IF_ERROR(source_.Finish());
    snapshot.consistency = source_.taken();
    return inner_.AddSnapshot(std::move(snapshot));
  }

 private:
  SnapshotRecorder& inner_;
  ConsistentSource& source_;
  ReadUnderIdentity* const snapshot_reader_;
};

}  // namespace

Result<Snapshot> Backup(Backups& backups, const BackupRequest& r) {
  const DeviceOpenOptions open_options{.direct_io = !r.buffered};
  // Through sparetimed's privileged helper when it injects one (agent/privsep).
  auto open = [&](const std::string& path) {
    return r.open_device ? r.open_device(path, open_options) : OpenBlockDevice(path, open_options);
  };
  ST_ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> device, open(r.device));
  ConsistencyOptions consistency = r.consistency;
  if (r.pause == nullptr) consistency.rate_limit = r.bytes_per_second;
  Result<std::unique_ptr<ConsistentSource>> prepared =
      ConsistentSource::Prepare(r.device, consistency, r.cancel);
  if (!prepared.ok()) return prepared.status().WithContext("backup of " + r.device);
  ConsistentSource& source = **prepared;
  ReadUnderIdentity* snapshot_reader = nullptr;  // owned by `device`
  if (source.read_path() != r.device) {
    Result<std::unique_ptr<BlockDevice>> snap_dev =
        open(source.read_path());
    if (!snap_dev.ok()) {
      return source.Explain(snap_dev.status()).WithContext("backup of " + r.device);
    }
    auto reader = std::make_unique<ReadUnderIdentity>(std::move(device), std::move(*snap_dev));
    snapshot_reader = reader.get();
    device = std::move(reader);
  }
  std::optional<RateGate> rate;
  BackupOptions options;
  options.chunk_size = backups.config().chunk_size;
  options.label = r.label;
  options.progress = r.progress;
  options.cancel = source.cancel_flag();
  options.checkpoint_bytes = std::max<uint64_t>(1, r.checkpoint_bytes);
  options.pause = r.pause;
  if (options.pause == nullptr && r.bytes_per_second > 0) {
    options.pause =
        &rate.emplace(r.bytes_per_second, r.clock ? *r.clock : SystemClock(), source.cancel_flag());
  }
  std::optional<Allocation> allocation;
  if (!r.all_blocks) {
    // The allocation of what is read: the LVM snapshot when there is one (the
    // origin keeps changing), the frozen or quiet device otherwise.
    allocation = FindAllocation(source.read_path(), device->size());
    if (r.notice) {
      for (const std::string& n : allocation->notices) r.notice(n);
      if (allocation->known) {
        r.notice("reading only the blocks in use: " +
                 std::to_string(allocation->AllocatedBytes()) + " of " +
                 std::to_string(device->size()) + " bytes (" + allocation->how + ")");
      }
    }
    if (allocation->known) options.allocated = &allocation->ranges;
  }
  // A thin LV with a kept base: read only what changed since it.
  std::optional<ThinDelta> delta;
  if (const ThinChain* chain = source.thin_chain()) {
    delta = UnchangedSinceBase(*chain, backups, device->identity(), device->size(),
                                       options.chunk_size ? options.chunk_size
                                                          : kDefaultChunkSize);
    if (r.notice) {
      r.notice(delta->note);
      if (!delta->warning.empty()) r.notice(delta->warning);
    }
    if (!delta->unchanged.empty()) options.unchanged = &delta->unchanged;
  }
  Catalog& catalog = backups.catalog();
  const std::string taken = source.taken();
  ConsistentJournal journal(catalog, taken != kTakenFrozen && taken != kTakenSnapshot);
  ConsistentRecorder recorder(catalog, source, snapshot_reader);
  BackupEnv env{backups.codec(), backups.sink(), journal, recorder};
  Result<Snapshot> snap = sparetime::Backup(*device, env, options);
  device.reset();  // closed before the snapshot is removed or kept (LVM: "in use")
  if (!snap.ok()) return source.Explain(snap.status()).WithContext("backup of " + r.device);
  if (Status st = backups.Commit(); !st.ok()) {
    return st.WithContext("snapshot " + snap->id + " of " + r.device +
                          " is stored but its peers did not get the new snapshot list; run the "
                          "backup again");
  }
  // Not a failure: the snapshot is recorded; the next incremental reads in full.
  if (Status kept = source.Keep(snap->id); !kept.ok() && r.notice) {
    r.notice(kept.message() + "; the next backup of " + r.device + " reads it in full");
  }
  return snap;
}

}  // namespace sparetime::ops
