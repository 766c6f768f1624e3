// Records: agent and policy entries parsed and validated, and the view of a
// whole directory that discovery and policy resolution work from.
//
// Invariants: a parsed AgentRecord has a non-empty name, an address, a port
// in 1..65535 and a 32-byte Ed25519 public key; every error names the entry's
// DN and the offending attribute and says what a valid value looks like.
// Parse() never fails as a whole: a malformed entry becomes one warning and is
// left out, so one bad entry cannot take the domain down.
#ifndef SPARETIME_DIRECTORY_RECORDS_H_
#define SPARETIME_DIRECTORY_RECORDS_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/base/time_window.h"
#include "sparetime/directory/entry.h"
#include "sparetime/directory/fleet_state.h"

namespace sparetime::directory {

using PublicKey = std::array<uint8_t, 32>;
using TimePoint = std::chrono::system_clock::time_point;

// An agent as published in the directory.
struct AgentRecord {
  std::string dn;
  std::string name;     // cn, the host name
  std::string address;  // host name or IP address peers connect to
  uint16_t port = 0;
  PublicKey public_key{};
  std::string site;  // failure domain; empty when not given
  uint64_t capacity = 0;
  uint64_t free = 0;
  std::optional<TimePoint> last_seen;  // absent: never heartbeated
  std::string version;
  std::vector<std::string> devices_held;
  // sparetimeRestoreFor (admin-set): other agents that may read this
  // agent's backups from the peers (a rescue box, an admin's box).
  std::vector<std::string> restore_for;
  // Its own backup state (fleet_state.h), as it last published it. A
  // malformed value is left out with one line in `state_warnings` (the
  // agent stays usable and listed).
  std::vector<DeviceBackupState> backups;
  std::optional<BackupHealth> health;
  std::vector<std::string> state_warnings;
};


// What an agent writes about itself on registration and each heartbeat.
struct AgentRegistration {
  std::string name;
  std::string address;
  uint16_t port = 0;
  PublicKey public_key{};
  std::string site;  // written only when creating the entry
  uint64_t capacity = 0;
  uint64_t free = 0;
  std::string version;
  std::vector<std::string> devices_held;
  // Fleet state (fleet_state.h): written at each heartbeat; nullopt leaves
  // the attributes as they are (a registration before the state is known).
  std::optional<std::vector<DeviceBackupState>> backups;
  std::optional<BackupHealth> health;
};


enum class PolicyScope { kDomainDefault, kGroup, kHost };

// One policy entry's own values; unset fields do not override anything.
struct PolicySettings {
  std::optional<std::vector<std::string>> devices;
  std::optional<uint32_t> idle_minutes;
  std::optional<uint32_t> idle_cpu_percent;
  std::optional<uint32_t> idle_io_pressure_percent;
  std::optional<std::vector<TimeWindow>> windows;
  std::optional<bool> ac_only;
  std::optional<uint32_t> replicas;
  std::optional<uint32_t> keep_last;
  std::optional<uint32_t> keep_daily;
  std::optional<uint32_t> keep_weekly;
  std::optional<uint32_t> keep_monthly;
  std::optional<uint64_t> bandwidth_limit;  // bytes/s, 0 = unlimited
  std::optional<int32_t> compression_level;
  std::optional<uint32_t> chunk_size;
  std::optional<std::string> consistency_mode;  // "auto" | "crash" | "freeze" | "snapshot"
  std::optional<uint32_t> max_freeze_seconds;   // 1..3600
  std::optional<uint64_t> snapshot_size;        // bytes of an LVM CoW snapshot, 0: 10%
  std::optional<bool> migration_allowed;
  std::optional<std::vector<std::string>> migration_from;
  std::optional<bool> migration_privileged;
  std::optional<PublicKey> escrow_public_key;
  std::optional<uint32_t> peer_max_age_minutes;
  std::optional<int64_t> max_age_seconds;  // sparetimeMaxAge ("3d")
  std::optional<uint32_t> peer_grace_days;      // delayed delete on peers (issue 21)
  std::optional<uint32_t> departed_grace_days;  // data of owners gone from the directory
  std::optional<uint32_t> caretaker_after_minutes;  // 0: no caretaker
};

struct PolicyEntry {
  std::string dn;
  std::string name;  // cn
  PolicyScope scope = PolicyScope::kDomainDefault;
  std::vector<std::string> hosts;   // sparetimeAppliesToHost
  std::vector<std::string> groups;  // sparetimeAppliesToGroup (DNs as written)
  PolicySettings settings;
};

Result<AgentRecord> ParseAgent(const Entry& entry);
Result<PolicyEntry> ParsePolicy(const Entry& entry);

// The directory, interpreted.
struct DirectoryView {
  std::vector<AgentRecord> agents;
  std::vector<PolicyEntry> policies;
  // normalised group DN -> normalised member DNs.
  std::map<std::string, std::vector<std::string>> group_members;
  // One line per entry left out, naming the entry, the attribute and why.
  std::vector<std::string> warnings;
};

// True when agent `caller` may read the backups `owner` keeps on the peers:
// it is the owner (the identity registered on the owner's entry), or the
// owner's entry names it in sparetimeRestoreFor. Names compare ignoring case.
bool MayReadBackupsOf(const DirectoryView& view, const std::string& caller,
                      const std::string& owner);

DirectoryView Parse(const DirectoryContents& contents);

// Live peers: agents other than `self_name` whose last heartbeat is within
// `max_age` of `now` (entries without a heartbeat are not live), sorted by name.
std::vector<AgentRecord> LivePeers(const DirectoryView& view, const std::string& self_name,
                                   TimePoint now, std::chrono::seconds max_age);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_RECORDS_H_
