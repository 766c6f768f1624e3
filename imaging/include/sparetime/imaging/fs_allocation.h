// Filesystem allocation: which byte ranges of a device a filesystem uses
// (data and metadata), so the imager reads only those (issue 20 part 2).
//
// Invariants:
//   - Never a silent hole over data: every doubt answers "unknown" (read
//     everything) with a one-line reason — an unknown or damaged filesystem,
//     an ext4 journal that needs recovery (its replay may write blocks the
//     on-disk bitmaps call free), a dirty xfs log, a failing tool or ioctl.
//   - Free space is what the filesystem positively reports as free
//     (GETFSMAP FMR_OWN_FREE records, ext4 block-bitmap zero bits, xfs
//     free-space btree extents); everything else inside the range is
//     allocated, including bytes past the filesystem's end and, on a whole
//     disk, everything outside the partitions (the table areas, gaps).
//   - Ranges are device-absolute, sorted, non-overlapping, merged, and lie
//     inside [0, device size).
//   - Mounted filesystems (found in /proc/self/mountinfo by the block
//     device's major:minor; a regular file by the loop device backed by it)
//     are asked through FS_IOC_GETFSMAP on the mount point: their on-disk
//     bitmaps may lag. Not mounted: ext2/3/4 through libext2fs's block
//     bitmaps; xfs through `xfs_logprint -t` (must say CLEAN) and
//     `xfs_db -r -c 'freesp -d'` (the free-space btrees, read-only).
//   - A whole disk with an MBR or GPT: each partition is looked at on its
//     own (its kernel partition device when there is one, else at its
//     offset inside the disk); a table the parser rejects (sizes that lie,
//     overlaps) makes the whole disk unknown, with the parser's message.
#ifndef SPARETIME_IMAGING_FS_ALLOCATION_H_
#define SPARETIME_IMAGING_FS_ALLOCATION_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparetime/imaging/device.h"

namespace sparetime {

struct Allocation {
  bool known = false;
  // known: how it was found, e.g. "ext4 mounted at /mnt (GETFSMAP)";
  // unknown: why every block is read.
  std::string how;
  std::vector<ByteRange> ranges;  // known: the allocated ranges
  // Lines for the user: one per partition or filesystem that is unknown.
  std::vector<std::string> notices;

  uint64_t AllocatedBytes() const;
};

// The allocation of the device (block device or image file) at `path` of
// `size` bytes: its filesystem, or its partitions' filesystems.
Allocation FindAllocation(const std::string& path, uint64_t size);

// The allocation of one filesystem at [offset, offset + length) of `path`
// (`path` itself holds it when offset is 0 and length its size). `rdev`:
// the block device that holds exactly this filesystem (0: none; a regular
// file is looked up as a loop device's backing file).
Allocation FilesystemAllocation(const std::string& path, uint64_t offset, uint64_t length,
                                uint64_t rdev);

// True when [offset, offset + length) intersects a range of `ranges`
// (sorted, non-overlapping).
bool AnyAllocated(const std::vector<ByteRange>& ranges, uint64_t offset, uint64_t length);

// Zeroes the bytes of `data` (device bytes from `offset`) that no range of
// `ranges` covers.
void ZeroUnallocated(const std::vector<ByteRange>& ranges, uint64_t offset,
                     std::span<std::byte> data);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_FS_ALLOCATION_H_
