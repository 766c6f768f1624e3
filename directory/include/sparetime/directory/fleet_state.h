// Fleet state: what an agent publishes about its own backups in its
// directory entry at each heartbeat (issue 23 part 5), so `sparetime fleet`
// — or any LDAP tool — sees every host's state from the directory alone.
//
// Encoding (docs/ldap.md "Backup state"): two agent-written attributes,
//   sparetimeBackupState   multi-valued, one compact JSON object per device:
//     {"device":"/dev/vdb","time":1765142000,"size":1073741824,
//      "snapshot":"3f9a...","seconds":12,"stored":52428800,"forced":false}
//     time 0 (and no snapshot) = never backed up; forced = the last
//     successful run was started on a busy box because the device was
//     overdue (never-idle box, part 6).
//   sparetimeBackupHealth  single-valued JSON object for the whole agent:
//     {"replicas":2,"healthy":1200,"under_replicated":3,"last_verify":T,
//      "last_error":"backup /dev/vdb: ...","last_error_time":T}
//
// Invariants: parsing is strict and bounded — a value longer than
// kMaxStateValueBytes, not a JSON object, with a float, a negative or
// non-integer number, a missing required key, a device that is not an
// absolute path or a snapshot id that is not hex is refused with an error
// naming the attribute and the value; unknown keys are ignored (a newer
// agent may add some). Encode→Parse is the identity.
#ifndef SPARETIME_DIRECTORY_FLEET_STATE_H_
#define SPARETIME_DIRECTORY_FLEET_STATE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "sparetime/base/status.h"

namespace sparetime::directory {

constexpr size_t kMaxStateValueBytes = 2048;
constexpr size_t kMaxErrorChars = 512;

// The last successful backup of one device.
struct DeviceBackupState {
  std::string device;    // the policy's sparetimeDevice
  int64_t time = 0;      // Unix seconds; 0: never backed up
  uint64_t size = 0;     // bytes imaged
  std::string snapshot;  // snapshot id (hex), "" when never
  uint64_t seconds = 0;  // how long the backup took
  uint64_t stored = 0;   // sealed bytes it sent
  bool forced = false;   // run on a busy box because overdue
  bool operator==(const DeviceBackupState&) const = default;
};

// The whole agent's replica health and its last verify and error.
struct BackupHealth {
  uint32_t replicas = 0;          // the policy's replica count it measures against
  uint64_t healthy = 0;           // chunks recorded on at least `replicas` peers
  uint64_t under_replicated = 0;  // chunks recorded on fewer
  int64_t last_verify = 0;        // Unix seconds of the last good verify; 0: never
  std::string last_error;         // the last failed job's error ("" none since)
  int64_t last_error_time = 0;
  bool operator==(const BackupHealth&) const = default;
};

std::string EncodeDeviceState(const DeviceBackupState& s);
std::string EncodeBackupHealth(const BackupHealth& h);
// kInvalidArgument naming the attribute, quoting (a prefix of) the value and
// saying what is wrong.
Result<DeviceBackupState> ParseDeviceState(std::string_view value);
Result<BackupHealth> ParseBackupHealth(std::string_view value);

// True when a device's last success (time 0: never) is older than `max_age`
// seconds at `now`. A device never backed up is overdue.
bool IsOverdue(const DeviceBackupState& s, int64_t now, int64_t max_age_seconds);

// "3d", "36h", "90m", "2w" -> seconds (1 hour .. 365 days); kInvalidArgument
// saying what a valid value looks like.
Result<int64_t> ParseMaxAge(std::string_view text);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_FLEET_STATE_H_
