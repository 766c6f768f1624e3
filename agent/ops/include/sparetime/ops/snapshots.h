// ops use cases over the snapshot list: list, find, restore, forget.
//
// Which snapshot "latest" is: the newest snapshot of one device. With
// `device` given (a device path as backed up, or a device key as
// `snapshots --json` shows it), the newest of that device; without it, the
// newest of the only device the backups hold — where they hold several,
// kInvalidArgument lists them and asks for --device. An id or id prefix
// names one snapshot whatever the device.
//
// Restore never shrinks what the user named: a block device keeps its
// size, and an existing file larger than the image keeps its size and the
// bytes past the image unless `truncate` is set. A target smaller than the
// image is refused (kFailedPrecondition), a missing file is created.
//
// With `partition`, one partition of a whole-disk snapshot is restored to
// the start of the target: a partition number the snapshot's table lacks is
// kNotFound listing the ones it has, a broken table kCorruption, a target
// smaller than the partition kFailedPrecondition — each before anything is
// written. A whole-disk restore onto a larger target moves the backup GPT
// to the target's end (imaging/disk_layout.h), so the table stays valid.
//
// Invariants: a restore reads the manifest and asks the peers where its
// chunks are (Backups::Prepare) before the target is opened, so nothing is
// written when the snapshot cannot be read.
#ifndef SPARETIME_OPS_SNAPSHOTS_H_
#define SPARETIME_OPS_SNAPSHOTS_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/partition_table.h"
#include "sparetime/imaging/restorer.h"
#include "sparetime/ops/backups.h"

namespace sparetime::ops {

// Every snapshot, newest first (as the catalog lists them).
Result<std::vector<Snapshot>> ListSnapshots(Backups& backups);

// `spec`: "latest", a snapshot id, or a unique id prefix; `device` (may be
// empty) narrows "latest" to one device (see above).
Result<Snapshot> FindSnapshot(Backups& backups, const std::string& spec,
                              const std::string& device = "");

struct RestoreRequest {
  std::string snapshot = "latest";
  std::string device;  // for "latest": which device's newest snapshot
  std::string target;  // device or file
  bool zero_holes = false;
  bool buffered = false;  // page-cache writes, not O_DIRECT
  bool truncate = false;  // cut an existing larger file to the image size
  // Write every good chunk and zeroes for damaged ones (RestoreOptions::
  // keep_going); the report's stats.damaged lists them. The caller decides
  // that a restore with damage failed (the CLI exits 6).
  bool keep_going = false;
  // > 0: restore only this partition of a whole-disk snapshot (numbered as
  // `snapshots` shows them) to the start of `target`.
  uint32_t partition = 0;
  ProgressFn progress;
  const std::atomic<bool>* cancel = nullptr;
};

struct RestoreReport {
  Snapshot snapshot;
  uint64_t image_size = 0;
  uint64_t target_size = 0;  // the target's size afterwards
  RestoreStats stats;
  std::optional<Partition> partition;  // the partition restored, when one was asked for
  bool gpt_moved = false;  // the backup GPT was moved to the larger target's end
};

// The partition table in a snapshot's image (scheme kNone without one).
Result<PartitionTable> SnapshotPartitions(Backups& backups, const Snapshot& snapshot);

Result<RestoreReport> RestoreSnapshot(Backups& backups, const RestoreRequest& request);

// Removes one snapshot from the catalog and commits the list; its chunks stay
// until a prune. The snapshot forgotten.
Result<Snapshot> ForgetSnapshot(Backups& backups, const std::string& spec);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_SNAPSHOTS_H_
