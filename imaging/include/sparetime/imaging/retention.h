// Retention: which snapshots a prune keeps, with restic's `forget --keep-*`
// semantics, and why.
//
// Per device (DeviceIdentity::Key), snapshots are walked newest first.
// keep_last N keeps the N newest. keep_daily / keep_weekly / keep_monthly N
// keep the newest snapshot of each of the N most recent local calendar days
// / ISO weeks / months that have a snapshot. A snapshot is kept when any
// rule keeps it and carries every reason that applies ("last 3",
// "daily 2026-11-20", "weekly 2026-W47", "monthly 2026-11"). Every device
// keeps at least its newest snapshot: when all counts are 0 it is kept with
// the reason "newest of its device (every keep count is 0)".
//
// Snapshots whose device identity is legacy_ambiguous (a catalog migrated
// from schema 1 where one old key covered snapshots of possibly distinct
// devices, see device.h) are never grouped: each is kept, with a reason that
// says why and how to drop it (`sparetime forget <id>`), and none counts
// toward any device's keep rules.
//
// Pure: no I/O; local time comes through the UtcOffsetFn seam.
#ifndef SPARETIME_IMAGING_RETENTION_H_
#define SPARETIME_IMAGING_RETENTION_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "sparetime/imaging/catalog.h"

namespace sparetime {

struct RetentionPolicy {
  uint32_t keep_last = 0;
  uint32_t keep_daily = 0;
  uint32_t keep_weekly = 0;
  uint32_t keep_monthly = 0;

  // "last 3, daily 7, weekly 4, monthly 6".
  std::string ToString() const;
};

// Seconds east of UTC of local time at a Unix time (e.g. 3600 for CET).
using UtcOffsetFn = std::function<int64_t(int64_t unix_seconds)>;
// The system's local time zone (localtime_r's tm_gmtoff).
int64_t SystemUtcOffset(int64_t unix_seconds);

struct RetentionDecision {
  Snapshot snapshot;
  bool keep = false;
  std::vector<std::string> reasons;  // empty when forgotten
};

// One decision per snapshot, newest first (ties keep their input order).
// `utc_offset` empty: SystemUtcOffset.
std::vector<RetentionDecision> ApplyRetention(std::span<const Snapshot> snapshots,
                                              const RetentionPolicy& policy,
                                              const UtcOffsetFn& utc_offset = {});

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_RETENTION_H_
