// Internal seams of the device module (device.cc, device_identity.cc),
// exposed so tests can feed a fake sysfs tree and synthetic superblocks.
// Not part of the public API.
#ifndef SPARETIME_IMAGING_SRC_DEVICE_SYSFS_H_
#define SPARETIME_IMAGING_SRC_DEVICE_SYSFS_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "sparetime/imaging/device.h"

namespace sparetime::detail {

inline constexpr const char* kSysfsRoot = "/sys";

// What the kernel says about a block device's hardware identity.
struct SysfsIdentity {
  std::string serial;
  std::string wwid;
  std::string backing_file;
  uint64_t loop_offset = 0;
  uint64_t loop_sizelimit = 0;
  uint32_t partition = 0;  // 0: a whole disk
  uint64_t start = 0;      // partition start, bytes
  std::string part_uuid;
};

// Looks up block device `rdev` under `sysfs_root` (normally "/sys") via
// dev/block/MAJ:MIN. For a partition (a `partition` attribute) the number,
// `start` (512-byte sectors, returned in bytes) and PARTUUID from `uevent`
// are the partition's, and everything else is its whole disk's (the parent
// directory). serial: device/serial, else serial (virtio); wwid:
// device/wwid, else wwid; loop: loop/backing_file, loop/offset,
// loop/sizelimit. Values are whitespace-trimmed; anything missing or
// unparsable stays empty / 0 (identity is best effort, never an error).
SysfsIdentity ReadSysfsIdentity(dev_t rdev, const std::string& sysfs_root);

// Copies what sysfs said into a block device's identity (OpenBlockDevice).
void ApplySysfsIdentity(SysfsIdentity sys, DeviceIdentity& id);

// Bytes of the start of a device needed to recognise its filesystem.
inline constexpr size_t kSuperblockProbeSize = 4096;

// The filesystem UUID (lower-case 8-4-4-4-12) of an ext2/3/4 or XFS
// filesystem whose first bytes are `head`; empty when none is recognised or
// the UUID is all zero.
std::string FsUuidFromSuperblock(std::span<const std::byte> head);

}  // namespace sparetime::detail

#endif  // SPARETIME_IMAGING_SRC_DEVICE_SYSFS_H_
