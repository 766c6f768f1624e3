// Disk layout of a snapshot (issue 20 part 3): its partition table, one
// partition restored on its own, and a GPT made whole again on a larger
// target.
//
// Invariants:
//   - The table is read from the snapshot's own image (SnapshotReader), so a
//     snapshot needs no catalog field for it and old snapshots work too.
//   - A window restore writes only inside [offset, offset + length) of the
//     image, shifted to offset 0 of the target; chunks wholly outside the
//     window are never fetched.
//   - RelocateGpt changes nothing unless the target holds a GPT whose primary
//     header (LBA 1) checks and says the disk ends at the image's end; then
//     it writes the backup entries and header at the target's new end, sets
//     the primary's alternate and last-usable LBAs, recomputes every CRC32,
//     stretches the protective MBR entry and zeroes the old backup header.
//     The primary entries are not moved: partitions keep their offsets.
#ifndef SPARETIME_IMAGING_DISK_LAYOUT_H_
#define SPARETIME_IMAGING_DISK_LAYOUT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/partition_table.h"

namespace sparetime {

// The partition table in the snapshot's image (scheme kNone when it has
// none); kCorruption when one is there but broken.
Result<PartitionTable> SnapshotPartitions(const Manifest& manifest, const Codec& codec,
                                          ChunkSource& source);

// `manifest` with every chunk outside [offset, offset + length) made a hole.
Manifest WindowManifest(const Manifest& manifest, uint64_t offset, uint64_t length);

// A target that takes an image of `image_size` bytes and keeps only its
// [offset, offset + length), written to `inner` at 0.
std::unique_ptr<RestoreTarget> WindowTarget(RestoreTarget& inner, uint64_t offset,
                                            uint64_t length, uint64_t image_size);

// Moves the backup GPT of the restored image of `image_size` bytes at `path`
// to the end of `path` (see the invariants). True when it moved one.
Result<bool> RelocateGpt(const std::string& path, uint64_t image_size);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_DISK_LAYOUT_H_
