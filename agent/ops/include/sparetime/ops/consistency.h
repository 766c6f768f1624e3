// The "consistent source" step of a backup (issue 20, section 1): before the
// imager reads a device, make what it reads consistent — take an LVM
// snapshot, freeze the mounted filesystem, or say that it is read live — and
// undo it on every path. ops::Backup (ops/backup.h) is its only caller, so the
// CLI's `backup --consistency` and sparetimed's scheduled backups (policy
// sparetimeConsistencyMode) take the same step.
//
// Modes:
//   auto     not mounted, or mounted read-only: read directly; an LVM logical
//            volume: snapshot; mounted read-write and not LVM: refused
//            (kFailedPrecondition naming the three choices).
//   snapshot LVM only: a thin snapshot of a thin LV, a classic CoW snapshot
//            (sized by policy) otherwise, named <lv>-sparetime-snap; a stale
//            one of that name (a killed agent's) is removed first.
//   freeze   FIFREEZE of the filesystem mounted from the device for the time
//            of the image, at most `max_freeze_seconds`.
//   crash    read live; the snapshot is recorded as inconsistent.
//
// Thin LVs (issue 20 section 5): after a recorded backup the thin snapshot is
// kept as <lv>-sparetime-base, tagged sparetime_snapshot_<id> (the catalog
// snapshot it was imaged into); the next backup's ThinChain names it, so
// ops::Backup can ask thin_delta what changed (ops/src/thin_delta.cc).
//
// Invariants:
//   - Nothing is left frozen: the ConsistentSource's destructor thaws; a
//     deadline thread thaws at `max_freeze_seconds` even when the pipeline
//     stalls, and at once when `cancel` (SIGINT/SIGTERM) is set; a watchdog
//     child process thaws when the agent dies (its pipe to the agent reaches
//     end-of-file), including on kill -9.
//   - A freeze whose estimate (used bytes ÷ read rate) exceeds the maximum is
//     refused before the filesystem is frozen.
//   - A freeze that hit its deadline, or a CoW snapshot that filled up, makes
//     Finish() fail: the caller records no snapshot.
//   - An LVM snapshot this step created is removed by the destructor; its
//     removal failing is reported by Finish() (or logged to the warnings).
//
// Thread safety: one ConsistentSource per backup; `cancel_flag()` may be read
// by any thread.
#ifndef SPARETIME_OPS_CONSISTENCY_H_
#define SPARETIME_OPS_CONSISTENCY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "sparetime/base/status.h"

namespace sparetime::ops {

enum class ConsistencyMode { kAuto, kSnapshot, kFreeze, kCrash };

// "auto", "snapshot", "freeze", "crash" (case-insensitive); kInvalidArgument
// naming the four otherwise.
Result<ConsistencyMode> ParseConsistencyMode(const std::string& text);
const char* ConsistencyModeName(ConsistencyMode mode);

// What a recorded snapshot says about how it was taken (Snapshot::consistency).
inline constexpr char kTakenDirect[] = "direct";      // not mounted or mounted ro
inline constexpr char kTakenFrozen[] = "freeze";
inline constexpr char kTakenSnapshot[] = "snapshot";  // an LVM snapshot
inline constexpr char kTakenCrash[] = "crash";        // read live: inconsistent

struct ConsistencyOptions {
  ConsistencyMode mode = ConsistencyMode::kAuto;
  uint32_t max_freeze_seconds = 30;
  // Size of a classic CoW snapshot in bytes; 0: 10% of the origin, at least
  // 64 MiB. Thin snapshots take no size.
  uint64_t snapshot_bytes = 0;
  // Device reads per second the backup is limited to (0: none): the freeze
  // estimate uses the smaller of this and the measured read rate.
  uint64_t rate_limit = 0;
  // Where /proc/self/mountinfo and /sys are (a test seam: "" is the real ones).
  std::string proc_root;
  std::string sys_root;
};

// Where the device is mounted (from mountinfo by major:minor).
struct DeviceMount {
  std::string mount_point;
  std::string fs_type;
  bool read_only = true;  // every mount of it is read-only (mount and superblock)
};
// nullopt when `device` is not mounted (or is not a block device).
Result<std::optional<DeviceMount>> FindMount(const std::string& device,
                                           const std::string& proc_root = "");

// A thin LV's previous sparetime snapshot and the new one, in one pool.
struct ThinChain {
  std::string base_lv;           // VG/<lv>-sparetime-base
  std::string base_snapshot_id;  // from its tag; "" when it has none
  uint64_t base_thin_id = 0, new_thin_id = 0;
  std::string pool_dm_path;  // /dev/mapper/<vg>-<pool>: "-tpool" and "_tmeta" are its layers
  std::string broken;        // why there is no usable base ("": there is one)
};

class ConsistentSource {
 public:
  // Prepares the device according to `options`: may freeze or snapshot.
  // `cancel` (may be null) is the caller's stop flag.
  static Result<std::unique_ptr<ConsistentSource>> Prepare(const std::string& device,
                                                           const ConsistencyOptions& options,
                                                           const std::atomic<bool>* cancel);
  virtual ~ConsistentSource();  // releases: thaw, remove the snapshot

  // The device to read (the LVM snapshot's path, or the device itself).
  virtual const std::string& read_path() const = 0;
  // kTakenDirect, kTakenFrozen, kTakenSnapshot or kTakenCrash.
  virtual const char* taken() const = 0;
  // The stop flag to hand the imager: set on the caller's cancel, and when a
  // freeze hits its deadline.
  virtual const std::atomic<bool>* cancel_flag() const = 0;
  // Called once the image is read and before it is recorded: releases the
  // freeze or snapshot and says whether what was read is consistent (the
  // deadline did not fire, the snapshot did not fill up). Idempotent.
  virtual Status Finish() = 0;
  // The imager failed with `error`: the clearer error when the cause was the
  // consistency step (deadline, full snapshot), else `error`. Releases too.
  virtual Status Explain(const Status& error) = 0;
  // A thin LVM snapshot with a kept base from an earlier backup: the chain
  // (null otherwise, and for classic snapshots).
  virtual const ThinChain* thin_chain() const { return nullptr; }
  // The image was recorded as `snapshot_id`: a thin snapshot becomes the
  // new base (the old one is removed). Others: nothing to do.
  virtual Status Keep(const std::string& snapshot_id) {
    (void)snapshot_id;
    return Status::Ok();
  }
};

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_CONSISTENCY_H_
