// Internal seams of the device module (device.cc, device_identity.cc),
// exposed so tests can feed a fake sysfs tree and synthetic superblocks.
// Not part of the public API.
#ifndef SPARETIME_IMAGING_SRC_DEVICE_SYSFS_H_
#define SPARETIME_IMAGING_SRC_DEVICE_SYSFS_H_

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string>

namespace sparetime::detail {

inline constexpr const char* kSysfsRoot = "/sys";

// What the kernel says about a block device's hardware identity.
struct SysfsIdentity {
  std::string serial;
  std::string wwid;
  std::string backing_file;
};

// Looks up block device `rdev` under `sysfs_root` (normally "/sys") via
// dev/block/MAJ:MIN. For a partition the whole disk's attributes are used.
// serial: device/serial, else serial (virtio); wwid: device/wwid, else wwid;
// backing_file: loop/backing_file. Values are whitespace-trimmed; anything
// missing stays empty (identity is best effort, never an error).
SysfsIdentity ReadSysfsIdentity(dev_t rdev, const std::string& sysfs_root);

// Bytes of the start of a device needed to recognise its filesystem.
inline constexpr size_t kSuperblockProbeSize = 4096;

// The filesystem UUID (lower-case 8-4-4-4-12) of an ext2/3/4 or XFS
// filesystem whose first bytes are `head`; empty when none is recognised or
// the UUID is all zero.
std::string FsUuidFromSuperblock(std::span<const std::byte> head);

}  // namespace sparetime::detail

#endif  // SPARETIME_IMAGING_SRC_DEVICE_SYSFS_H_
