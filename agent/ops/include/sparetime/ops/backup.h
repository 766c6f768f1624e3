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
//   - Backups::Warnings() holds the run's warnings afterwards, on success
//     and on failure.
//
// Thread safety: one backup per Backups object at a time.
#ifndef SPARETIME_OPS_BACKUP_H_
#define SPARETIME_OPS_BACKUP_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/device_fds.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/ops/backups.h"

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
  // How the device is opened; null: OpenBlockDevice. sparetimed injects its
  // privileged helper's OPEN_DEVICE_RO here (agent/privsep).
  DeviceOpener open_device;
};

// Opens the device, runs the imager, commits. The snapshot on success.
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
