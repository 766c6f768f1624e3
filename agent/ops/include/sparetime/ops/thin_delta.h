// Changed blocks of a thin LV since its kept base snapshot (issue 20
// section 5): thin_delta (thin-provisioning-tools) on a metadata snapshot of
// the pool says which ranges differ between the base thin snapshot and the
// new one; the chunks no changed range touches take the base snapshot's ids
// unread (BackupOptions::unchanged). Used by ops::Backup only.
//
// Invariants:
//   - UnchangedSinceBase never fails a backup: any problem yields no
//     unchanged chunk (a full read) and a note saying why.
//   - A range counts as unchanged only when thin_delta listed it <same> or
//     did not list it (unmapped in both: zeroes in both).
#ifndef SPARETIME_OPS_THIN_DELTA_H_
#define SPARETIME_OPS_THIN_DELTA_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/fs_allocation.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/consistency.h"

namespace sparetime::ops {

// What thin_delta says changed between a ThinChain's base and new snapshot
// (thin_delta.cc), as byte ranges of the thin volume, sorted and merged.
// kCorruption when the output cannot be read.
Result<std::vector<ByteRange>> ParseThinDelta(const std::string& xml);
// The indices of the chunks of a `size`-byte image that no changed range touches.
std::vector<uint64_t> UnchangedChunks(const std::vector<ByteRange>& changed, uint64_t size,
                                      uint32_t chunk_size);
struct ThinDelta {
  std::vector<std::pair<uint64_t, ChunkId>> unchanged;  // for BackupOptions::unchanged
  uint64_t changed_bytes = 0;
  std::string note;     // one line: what was found, or why the volume is read in full
  std::string warning;  // the metadata snapshot could not be released ("": it was)
};
// The chunks of the image of `device` unchanged since the chain's base,
// with the base snapshot's ids; empty (note says why) when not known.
ThinDelta UnchangedSinceBase(const ThinChain& chain, Backups& backups,
                             const DeviceIdentity& device, uint64_t size, uint32_t chunk_size);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_THIN_DELTA_H_
