// Devices opened by someone else, and the seam through which the use cases
// open a device (device.h has the devices themselves).
//
// sparetimed under privilege separation does not open devices itself: its
// privileged helper (agent/privsep) opens them read-only and passes the
// descriptors; OpenBlockDeviceFds wraps those exactly as OpenBlockDevice
// wraps its own (identity from fstat and sysfs by st_rdev, O_DIRECT reads
// through `direct_fd` when valid), and ops::BackupRequest::open_device takes
// a DeviceOpener that does so.
#ifndef SPARETIME_IMAGING_DEVICE_FDS_H_
#define SPARETIME_IMAGING_DEVICE_FDS_H_

#include <functional>
#include <memory>
#include <string>

#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/device.h"

namespace sparetime {

// A BlockDevice over descriptors opened read-only elsewhere. `direct_fd` is
// an O_DIRECT descriptor of the same file, or invalid (buffered reads only).
// `path` names the device in the identity and in errors.
Result<std::unique_ptr<BlockDevice>> OpenBlockDeviceFds(const std::string& path, Fd fd,
                                                        Fd direct_fd);

// How the use cases open a device: OpenBlockDevice unless a caller (the
// daemon under privilege separation) injects another way.
using DeviceOpener = std::function<Result<std::unique_ptr<BlockDevice>>(
    const std::string& path, DeviceOpenOptions options)>;

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_DEVICE_FDS_H_
