// Catalog schema migrations (internal to imaging; catalog.cc calls
// MigrateCatalog before checking the schema version).
//
// Schema 1 -> 2: device identities. Schema 1 keyed devices by the strongest
// of wwid / serial / fs UUID / loop backing file / path, so equal-size
// partitions of one disk, offset loops of one file and clones of one image
// shared a key (and prune deleted one's history). Schema 2 keys are
// described in device.h. The migration rewrites each snapshot's device JSON
// so that its Key() is the schema-2 key wherever that can be told:
//   - a regular file named by an absolute path: real_path = that path made
//     canonical (the file need not exist any more);
//   - a block device that is not a loop device: when the live device at the
//     stored path still has the stored schema-1 key (same disk WWID/serial or
//     fs UUID, same size), its partition number, start and UUID are taken
//     from it; without WWID/serial/backing file the path is the key anyway;
//   - everything else (loop devices, whose offset was never stored and whose
//     attachment may have changed; relative file paths; disks with a serial
//     that are gone or changed) keeps its schema-1 key as legacy_key, so its
//     snapshots stay one group. When such a legacy group holds snapshots of
//     more than one path, or of a loop device, its rows could be distinct
//     devices: they are marked legacy_ambiguous and retention keeps them all
//     (it never guesses which of them is the "newest of the device").
// Resume journals (jobs/progress) are re-keyed when the live device at the
// job's path still has the job's schema-1 key and is not a loop device;
// otherwise they are left as they were (the next backup starts afresh).
//
// Invariants: all of it happens in one transaction that also sets
// schema_version to 2, so a crash leaves the catalog at 1 or fully at 2;
// a fresh database (no meta table) or one already at 2 is untouched; a row
// whose device JSON does not parse is left for the reader to report.
#ifndef SPARETIME_IMAGING_SRC_CATALOG_MIGRATE_H_
#define SPARETIME_IMAGING_SRC_CATALOG_MIGRATE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "sparetime/base/sqlite_db.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/device.h"

namespace sparetime::detail {

// What a path is now: the migration's seam onto the live system.
using DeviceProbe = std::function<Result<DeviceIdentity>(const std::string& path)>;

// OpenBlockDevice(path) (buffered) and its identity.
Result<DeviceIdentity> ProbeLiveDevice(const std::string& path);

// The schema-1 key formula, frozen: the strongest of wwid, serial, fs UUID,
// loop backing file, path, then ":size=<bytes>".
std::string SchemaOneKey(const DeviceIdentity& id);

struct MigrationReport {
  int from_version = 0;      // 0: nothing to migrate (fresh or current)
  uint64_t rekeyed = 0;      // rows whose key is now a schema-2 key
  uint64_t legacy = 0;       // rows keeping their schema-1 key
  uint64_t ambiguous = 0;    // of those, rows marked legacy_ambiguous
  uint64_t jobs_rekeyed = 0;
};

// Migrates `db` to catalog schema `target_version` (2) in one transaction.
Result<MigrationReport> MigrateCatalog(SqliteDb& db, int target_version,
                                       const DeviceProbe& probe = ProbeLiveDevice);

}  // namespace sparetime::detail

#endif  // SPARETIME_IMAGING_SRC_CATALOG_MIGRATE_H_
