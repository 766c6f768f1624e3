// Policy resolution: the effective policy of one host, merged from the
// built-in defaults, the domain default, the host's group policies and its
// host policies, with where each value came from.
//
// Precedence (lowest to highest): built-in default < domain default policy <
// group policies < host policies. A more specific level replaces a value as a
// whole, multi-valued settings (devices, windows, migration sources) included.
// Two policies of the same level that set the same attribute differently: the
// one whose DN sorts first (normalised) wins and a warning names both, so the
// result never depends on the order the server returned entries in.
#ifndef SPARETIME_DIRECTORY_POLICY_H_
#define SPARETIME_DIRECTORY_POLICY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/directory/records.h"

namespace sparetime::directory {

struct EffectivePolicy {
  std::string host;
  std::vector<std::string> devices;
  uint32_t idle_minutes = 15;
  uint32_t idle_cpu_percent = 10;
  uint32_t idle_io_pressure_percent = 10;
  std::vector<TimeWindow> windows;  // empty: any time
  bool ac_only = true;
  uint32_t replicas = 2;
  uint32_t keep_last = 3;
  uint32_t keep_daily = 7;
  uint32_t keep_weekly = 4;
  uint32_t keep_monthly = 6;
  uint64_t bandwidth_limit = 0;
  int32_t compression_level = 3;
  uint32_t chunk_size = 1 << 20;
  std::string consistency_mode = "auto";
  uint32_t max_freeze_seconds = 30;
  uint64_t snapshot_size = 0;  // 0: 10% of the origin LV, at least 64 MiB
  bool migration_allowed = false;
  std::vector<std::string> migration_from;
  bool migration_privileged = false;  // migrated processes may run as root / with capabilities
  std::optional<PublicKey> escrow_public_key;
  uint32_t peer_max_age_minutes = 15;
  // sparetimeMaxAge: a device whose last success is older is overdue (shown
  // by `sparetime fleet`, backed up even on a busy box). Default 7 days.
  int64_t max_age_seconds = 7 * 86400;
  uint32_t peer_grace_days = 7;       // releases and old roots kept on peers (docs/peers.md)
  uint32_t departed_grace_days = 30;  // a departed owner's data kept on peers
  // An owner with no heartbeat for this long gets a caretaker: one live
  // peer that restores its chunks' replica count (docs/peers.md
  // "Caretaker"). 0: never.
  uint32_t caretaker_after_minutes = 1440;

  // LDAP attribute name (e.g. "sparetimeReplicas") -> DN of the policy that
  // set it, or "built-in default".
  std::map<std::string, std::string> source;
  // The policies that applied, lowest precedence first.
  std::vector<std::string> applied;
  // Same-level conflicts, one line each.
  std::vector<std::string> warnings;
};

// `host` is the agent name (cn). Its group memberships come from
// view.group_members, matched against the agent's DN in view.agents (or
// cn=<host> under any agents base when the host has no entry yet).
EffectivePolicy ResolvePolicy(const DirectoryView& view, const std::string& host);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_POLICY_H_
