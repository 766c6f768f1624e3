// ops::Backup: image one block device or image file into opened Backups and
// commit the new snapshot list (peers get the new roots). The CLI's
// `sparetime backup` (with or without --when-idle) and sparetimed's
// scheduled backups run this one function.
//
// Invariants:
//   - The byte-rate limit applies to every backup: under a JobController
//     its gate enforces the controller's rate (`pause` given); without one
//     a token bucket at `bytes_per_second` gates the device reads.
//   - A snapshot is reported only once it is committed; a failed commit
//     says that the snapshot is stored but the peers lack the new list.
//   - Unless all_blocks, only allocated ranges are read; a filesystem whose
//     allocation is unknown is read whole and `notice` says why.
//   - Backups::Warnings() holds the run's warnings afterwards, on success
//     and on failure.
//
// Thread safety: one backup per Backups object at a time.
#ifndef SPARETIME_OPS_BACKUP_H_
#define SPARETIME_OPS_BACKUP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/device_fds.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/consistency.h"

namespace sparetime::ops {

struct BackupRequest {
  std::string device;  // block device or image file
  std::string label;
  bool buffered = false;                 // page-cache reads, not O_DIRECT
  uint64_t checkpoint_bytes = 256ull << 20;  // journal progress every this many bytes
  // Device reads per second, 0: unlimited. Ignored when `pause` is given
  // (the JobController that owns the gate applies its own rate).
  uint64_t bytes_per_second = 0;
  PauseGate* pause = nullptr;  // a JobController's gate, or null
  ProgressFn progress;
  const std::atomic<bool>* cancel = nullptr;
  const Clock* clock = nullptr;  // for the rate limit; null: the system clock
  // How a mounted or LVM device is made consistent (ops/consistency.h);
  // rate_limit is filled from bytes_per_second.
  ConsistencyOptions consistency;
  // Raw image of every block (forensics). Off: only the blocks the
  // filesystem(s) use are read (imaging/fs_allocation.h); the rest are holes.
  bool all_blocks = false;
  // Told, one line each, what was found about the device's allocation and
  // every filesystem or partition read whole for want of it (may be empty).
  std::function<void(const std::string&)> notice;
  // How the device is opened; null: OpenBlockDevice. sparetimed injects its
  // privileged helper's OPEN_DEVICE_RO here (agent/privsep).
  DeviceOpener open_device;
};

// Opens the device, prepares it (consistency step), runs the imager, releases
// the freeze or LVM snapshot, commits. The snapshot on success.
Result<Snapshot> Backup(Backups& backups, const BackupRequest& request);

// A PauseGate that only enforces a byte rate (what `pause` is without a
// JobController). Rate 0: never waits. A set `cancel` ends a wait within a
// tenth of a second of the rate's worth of bytes (kCancelled).
class RateGate final : public PauseGate {
 public:
  RateGate(uint64_t bytes_per_second, const Clock& clock,
           const std::atomic<bool>* cancel = nullptr);
  ~RateGate() override;
  Status WaitWhilePaused(uint64_t bytes) override;

 private:
  struct Bucket;
  std::unique_ptr<Bucket> bucket_;
};

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_BACKUP_H_
