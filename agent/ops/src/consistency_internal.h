// The three kinds of ConsistentSource (ops/consistency.h) and what they share.
// Internal to agent/ops.
#ifndef SPARETIME_OPS_SRC_CONSISTENCY_INTERNAL_H_
#define SPARETIME_OPS_SRC_CONSISTENCY_INTERNAL_H_

#include <memory>
#include <string>
#include <vector>

#include "sparetime/ops/consistency.h"

namespace sparetime::ops::detail {

// Reads the device as it is: `taken` is kTakenDirect or kTakenCrash.
std::unique_ptr<ConsistentSource> MakeDirectSource(const std::string& device, const char* taken,
                                                   const std::atomic<bool>* cancel);

// FIFREEZE of the filesystem mounted at `mount` for the image of `device`
// (fs_freeze.cc).
Result<std::unique_ptr<ConsistentSource>> MakeFreezeSource(const std::string& device,
                                                           const DeviceMount& mount,
                                                           const ConsistencyOptions& options,
                                                           const std::atomic<bool>* cancel);

// The LVM logical volume a block device is, from /sys/dev/block/M:m/dm
// (uuid "LVM-..."): the device-mapper name, or empty when it is not LVM.
std::string LvmDmName(const std::string& device, const std::string& sys_root);

// An LVM snapshot of the LV whose device-mapper name is `dm_name`
// (lvm_snapshot.cc).
Result<std::unique_ptr<ConsistentSource>> MakeLvmSnapshotSource(const std::string& device,
                                                                const std::string& dm_name,
                                                                const ConsistencyOptions& options,
                                                                const std::atomic<bool>* cancel);

// Runs a program (searched in PATH) with `args`, without a shell; its stdout
// in `out`, stderr in `err`. kNotFound when the program is not installed.
struct ToolResult {
  int exit_code = -1;
  std::string out, err;
};
Result<ToolResult> RunTool(const std::vector<std::string>& argv);

// A flag that follows the caller's cancel flag and can be set on its own.
class CancelRelay {
 public:
  explicit CancelRelay(const std::atomic<bool>* outer) : outer_(outer) {}
  void Set() { own_.store(true); }
  // Copies the caller's flag into ours; true when it is set.
  bool Poll() {
    if (outer_ != nullptr && outer_->load()) own_.store(true);
    return own_.load();
  }
  const std::atomic<bool>* flag() const { return &own_; }
  bool outer_set() const { return outer_ != nullptr && outer_->load(); }

 private:
  const std::atomic<bool>* outer_;
  std::atomic<bool> own_{false};
};

}  // namespace sparetime::ops::detail

#endif  // SPARETIME_OPS_SRC_CONSISTENCY_INTERNAL_H_
