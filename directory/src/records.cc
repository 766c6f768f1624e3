// Records: agent and policy entries validated into typed records, the
// directory view built from them, and live-peer selection.
//
// Invariants: every error names the entry's DN and the attribute, quotes the
// value and says what a valid value is. An entry with any invalid value is
// rejected as a whole (fail closed: half a policy could silently weaken a
// stricter one); Parse() turns each rejected entry into exactly one warning.
// The accepted ranges are listed in docs/ldap.md ("How policies combine").
#include "sparetime/directory/records.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>

#include "values.h"

namespace sparetime::directory {
namespace {

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMinChunkSizeSetting = 64 * 1024;
constexpr int64_t kMaxChunkSizeSetting = 4 * 1024 * 1024;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Reads one entry's attributes with the checks and messages all entries share.
class EntryReader {
 public:
  explicit EntryReader(const Entry& entry) : entry_(entry) {}

  Status Error(std::string_view attr, const std::string* value, std::string_view why) const {
    std::string msg = entry_.dn + ": " + std::string(attr);
    if (value != nullptr) msg += ": \"" + *value + "\"";
    return InvalidArgument(msg + " " + std::string(why));
  }

  // The value of a single-valued attribute; nullptr when absent.
  Result<const std::string*> Single(std::string_view attr) const {
    const auto& values = entry_.Values(attr);
    if (values.size() > 1) {
      return Error(attr, nullptr, "has " + std::to_string(values.size()) +
                                      " values; it is single-valued, keep one");
    }
    return values.empty() ? nullptr : &values[0];
  }

  Result<const std::string*> Required(std::string_view attr, std::string_view what) const {
    ST_ASSIGN_OR_RETURN(const std::string* value, Single(attr));
    if (value == nullptr) return Error(attr, nullptr, "is missing; it must be " + std::string(what));
    return value;
  }

  // The entry's name: its cn, the one matching the RDN when there are several.
  Result<std::string> Name() const {
    const auto& values = entry_.Values("cn");
    if (values.empty()) return Error("cn", nullptr, "is missing; every entry needs a name");
    if (values.size() == 1) return values[0];
    std::string rdn = NormalizeDn(entry_.dn.substr(0, entry_.dn.find(',')));
    for (const std::string& v : values) {
      if (EqualsIgnoreCase(rdn, "cn=" + v)) return v;
    }
    return Error("cn", nullptr, "has several values and none is the entry's RDN");
  }

  Result<std::optional<int64_t>> Integer(std::string_view attr, int64_t min, int64_t max) const {
    ST_ASSIGN_OR_RETURN(const std::string* value, Single(attr));
    if (value == nullptr) return std::optional<int64_t>();
    std::string valid = "; a valid value is an integer from " + std::to_string(min) + " to " +
                        std::to_string(max);
    int64_t n = 0;
    const char* end = value->data() + value->size();
    auto [ptr, ec] = std::from_chars(value->data(), end, n);
    if (ec == std::errc::result_out_of_range) return Error(attr, value, "is out of range" + valid);
    if (ec != std::errc() || ptr != end || value->empty()) {
      return Error(attr, value, "is not an integer" + valid);
    }
    if (n < min || n > max) return Error(attr, value, "is out of range" + valid);
    return std::optional<int64_t>(n);
  }

  template <typename T>
  Status IntegerInto(std::string_view attr, int64_t min, int64_t max, std::optional<T>& out) const {
    ST_ASSIGN_OR_RETURN(std::optional<int64_t> n, Integer(attr, min, max));
    if (n) out = static_cast<T>(*n);
    return Status::Ok();
  }

  Status BooleanInto(std::string_view attr, std::optional<bool>& out) const {
    ST_ASSIGN_OR_RETURN(const std::string* value, Single(attr));
    if (value == nullptr) return Status::Ok();
    if (*value != "TRUE" && *value != "FALSE") {
      return Error(attr, value, "is not a boolean; a valid value is TRUE or FALSE (upper case)");
    }
    out = *value == "TRUE";
    return Status::Ok();
  }

  Status KeyInto(std::string_view attr, std::optional<PublicKey>& out) const {
    ST_ASSIGN_OR_RETURN(const std::string* value, Single(attr));
    if (value == nullptr) return Status::Ok();
    Result<PublicKey> key = DecodeKey(*value);
    if (!key.ok()) return Error(attr, value, "is not a key: " + key.status().message());
    out = *key;
    return Status::Ok();
  }

  // Multi-valued host names (absent: empty).
  Result<std::vector<std::string>> HostNames(std::string_view attr) const {
    for (const std::string& v : entry_.Values(attr)) {
      if (!IsHostName(v)) {
        return Error(attr, &v,
                     "is not a host name; a valid value is 1-255 letters, digits, '-', '.' or '_'");
      }
    }
    return entry_.Values(attr);
  }

  // Multi-valued absolute paths, optionally prefixed by "host:" (devices held).
  Result<std::vector<std::string>> Devices(std::string_view attr, bool with_owner) const {
    for (const std::string& v : entry_.Values(attr)) {
      std::string_view device = v;
      bool ok = true;
      if (with_owner) {
        size_t colon = v.find(':');
        ok = colon != std::string::npos && IsHostName(device.substr(0, colon));
        device.remove_prefix(ok ? colon + 1 : 0);
      }
      ok = ok && !device.empty() && device.front() == '/';
      if (!ok) {
        return Error(attr, &v,
                     with_owner ? "is not owner-host:device; a valid value looks like "
                                  "beta:/dev/disk/by-id/nvme-eui.0025388b71b2c4d1"
                                : "is not an absolute device path; a valid value looks like "
                                  "/dev/disk/by-id/nvme-eui.0025388b71b2c4d1");
      }
    }
    return entry_.Values(attr);
  }

 private:
  const Entry& entry_;
};

Status ReadScope(const EntryReader& r, const Entry& entry, PolicyEntry& policy) {
  std::optional<bool> domain_default;
  ST_RETURN_IF_ERROR(r.BooleanInto("sparetimeDomainDefault", domain_default));
  ST_ASSIGN_OR_RETURN(policy.hosts, r.HostNames("sparetimeAppliesToHost"));
  policy.groups = entry.Values("sparetimeAppliesToGroup");
  for (const std::string& g : policy.groups) {
    if (g.find('=') == std::string::npos) {
      return r.Error("sparetimeAppliesToGroup", &g,
                     "is not a DN; a valid value names a groupOfNames, e.g. "
                     "cn=lab,ou=groups,ou=sparetime,dc=example,dc=org");
    }
  }
  // A policy naming hosts is a host policy even when it also names groups:
  // it then applies to those hosts and the groups' members, at host level.
  if (domain_default.value_or(false)) {
    policy.scope = PolicyScope::kDomainDefault;
  } else if (!policy.hosts.empty()) {
    policy.scope = PolicyScope::kHost;
  } else if (!policy.groups.empty()) {
    policy.scope = PolicyScope::kGroup;
  } else {
    return r.Error("sparetimeDomainDefault/sparetimeAppliesToGroup/sparetimeAppliesToHost", nullptr,
                   "are all absent (or FALSE), so the policy applies to nothing; set "
                   "sparetimeDomainDefault: TRUE, a sparetimeAppliesToGroup or a "
                   "sparetimeAppliesToHost");
  }
  return Status::Ok();
}

Status ReadSettings(const EntryReader& r, const Entry& entry, PolicySettings& s) {
  if (!entry.Values("sparetimeDevice").empty()) {
    ST_ASSIGN_OR_RETURN(s.devices, r.Devices("sparetimeDevice", false));
  }
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeIdleMinutes", 1, 1440, s.idle_minutes));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeIdleCpuPercent", 0, 100, s.idle_cpu_percent));
  ST_RETURN_IF_ERROR(
      r.IntegerInto("sparetimeIdleIoPressurePercent", 0, 100, s.idle_io_pressure_percent));
  if (!entry.Values("sparetimeWindow").empty()) {
    std::vector<TimeWindow> windows;
    for (const std::string& text : entry.Values("sparetimeWindow")) {
      Result<TimeWindow> w = ParseTimeWindow(text);
      if (!w.ok()) return r.Error("sparetimeWindow", nullptr, "is not valid: " + w.status().message());
      windows.push_back(*w);
    }
    s.windows = std::move(windows);
  }
  ST_RETURN_IF_ERROR(r.BooleanInto("sparetimeAcOnly", s.ac_only));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeReplicas", 1, 16, s.replicas));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeKeepLast", 1, 10000, s.keep_last));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeKeepDaily", 0, 10000, s.keep_daily));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeKeepWeekly", 0, 10000, s.keep_weekly));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeKeepMonthly", 0, 10000, s.keep_monthly));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeBandwidthLimit", 0, kMaxInt64, s.bandwidth_limit));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeCompressionLevel", 1, 19, s.compression_level));
  ST_RETURN_IF_ERROR(
      r.IntegerInto("sparetimeChunkSize", kMinChunkSizeSetting, kMaxChunkSizeSetting, s.chunk_size));
  if (s.chunk_size && (*s.chunk_size & (*s.chunk_size - 1)) != 0) {
    std::string v = std::to_string(*s.chunk_size);
    return r.Error("sparetimeChunkSize", &v,
                   "is not a power of two; a valid value is 65536, 131072, ... 4194304 "
                   "(64 KiB to 4 MiB)");
  }
  ST_ASSIGN_OR_RETURN(const std::string* mode, r.Single("sparetimeConsistencyMode"));
  if (mode != nullptr) {
    for (const char* valid : {"auto", "crash", "freeze", "snapshot"}) {
      if (EqualsIgnoreCase(*mode, valid)) s.consistency_mode = valid;
    }
    if (!s.consistency_mode) {
      return r.Error("sparetimeConsistencyMode", mode,
                     "is not a consistency mode; a valid value is auto, crash, freeze or snapshot");
    }
  }
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeMaxFreezeSeconds", 1, 3600, s.max_freeze_seconds));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeSnapshotSize", 0, kMaxInt64, s.snapshot_size));
  ST_RETURN_IF_ERROR(r.BooleanInto("sparetimeMigrationAllowed", s.migration_allowed));
  if (!entry.Values("sparetimeMigrationFrom").empty()) {
    ST_ASSIGN_OR_RETURN(s.migration_from, r.HostNames("sparetimeMigrationFrom"));
  }
  ST_RETURN_IF_ERROR(r.BooleanInto("sparetimeMigrationPrivileged", s.migration_privileged));
  ST_RETURN_IF_ERROR(r.KeyInto("sparetimeEscrowPublicKey", s.escrow_public_key));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimePeerMaxAgeMinutes", 1, 10080, s.peer_max_age_minutes));
  ST_ASSIGN_OR_RETURN(const std::string* max_age, r.Single("sparetimeMaxAge"));
  if (max_age != nullptr) {
    Result<int64_t> seconds = ParseMaxAge(*max_age);
    if (!seconds.ok()) return r.Error("sparetimeMaxAge", nullptr, "is not valid: " + seconds.status().message());
    s.max_age_seconds = *seconds;
  }
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimePeerGraceDays", 0, 3650, s.peer_grace_days));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeDepartedGraceDays", 0, 3650, s.departed_grace_days));
  ST_RETURN_IF_ERROR(
      r.IntegerInto("sparetimeCaretakerAfterMinutes", 0, 525600, s.caretaker_after_minutes));
  return Status::Ok();
}

}  // namespace

Result<AgentRecord> ParseAgent(const Entry& entry) {
  EntryReader r(entry);
  AgentRecord a;
  a.dn = entry.dn;
  ST_ASSIGN_OR_RETURN(a.name, r.Name());
  if (!IsHostName(a.name)) {
    return r.Error("cn", &a.name,
                   "is not a host name; a valid value is 1-255 letters, digits, '-', '.' or '_'");
  }
  ST_ASSIGN_OR_RETURN(const std::string* address,
                      r.Required("sparetimeAddress", "the host name or IP address peers connect to"));
  bool address_ok = !address->empty() && address->size() <= 255 &&
                    std::all_of(address->begin(), address->end(), [](unsigned char c) {
                      return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' ||
                             c == '%';
                    });
  if (!address_ok) {
    return r.Error("sparetimeAddress", address,
                   "is not a host name or IP address; a valid value looks like alpha.example.org, "
                   "192.0.2.17 or 2001:db8::17 (no brackets, no port)");
  }
  a.address = *address;
  ST_RETURN_IF_ERROR(r.Required("sparetimePort", "the TCP port, 1 to 65535").status());
  std::optional<uint16_t> port;
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimePort", 1, 65535, port));
  a.port = *port;
  ST_ASSIGN_OR_RETURN(const std::string* key,
                      r.Required("sparetimePublicKey", "the agent's Ed25519 public key in base64"));
  Result<PublicKey> decoded = DecodeKey(*key);
  if (!decoded.ok()) return r.Error("sparetimePublicKey", key, "is not a key: " + decoded.status().message());
  a.public_key = *decoded;
  ST_ASSIGN_OR_RETURN(const std::string* site, r.Single("sparetimeSite"));
  if (site != nullptr) a.site = *site;
  std::optional<uint64_t> capacity, free;
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeCapacity", 0, kMaxInt64, capacity));
  ST_RETURN_IF_ERROR(r.IntegerInto("sparetimeFree", 0, kMaxInt64, free));
  a.capacity = capacity.value_or(0);
  a.free = free.value_or(0);
  ST_ASSIGN_OR_RETURN(const std::string* last_seen, r.Single("sparetimeLastSeen"));
  if (last_seen != nullptr) {
    Result<TimePoint> t = ParseGeneralizedTime(*last_seen);
    if (!t.ok()) return r.Error("sparetimeLastSeen", last_seen, "is not valid: " + t.status().message());
    a.last_seen = *t;
  }
  ST_ASSIGN_OR_RETURN(const std::string* version, r.Single("sparetimeVersion"));
  if (version != nullptr) a.version = *version;
  ST_ASSIGN_OR_RETURN(a.devices_held, r.Devices("sparetimeDeviceHeld", true));
  ST_ASSIGN_OR_RETURN(a.restore_for, r.HostNames("sparetimeRestoreFor"));
  // The agent's own backup state: what a broken agent wrote is left out,
  // value by value, never the whole entry.
  for (const std::string& v : entry.Values("sparetimeBackupState")) {
    Result<DeviceBackupState> s = ParseDeviceState(v);
    if (s.ok()) {
      a.backups.push_back(std::move(*s));
    } else {
      a.state_warnings.push_back(entry.dn + ": value skipped: " + s.status().message());
    }
  }
  const auto& health = entry.Values("sparetimeBackupHealth");
  if (health.size() > 1) {
    a.state_warnings.push_back(entry.dn + ": sparetimeBackupHealth has " +
                               std::to_string(health.size()) +
                               " values; it is single-valued, all are skipped");
  } else if (health.size() == 1) {
    Result<BackupHealth> h = ParseBackupHealth(health[0]);
    if (h.ok()) {
      a.health = *h;
    } else {
      a.state_warnings.push_back(entry.dn + ": value skipped: " + h.status().message());
    }
  }
  return a;
}

Result<PolicyEntry> ParsePolicy(const Entry& entry) {
  EntryReader r(entry);
  PolicyEntry p;
  p.dn = entry.dn;
  ST_ASSIGN_OR_RETURN(p.name, r.Name());
  ST_RETURN_IF_ERROR(ReadScope(r, entry, p));
  ST_RETURN_IF_ERROR(ReadSettings(r, entry, p.settings));
  return p;
}

DirectoryView Parse(const DirectoryContents& contents) {
  DirectoryView view;
  for (const Entry& e : contents.agents) {
    Result<AgentRecord> a = ParseAgent(e);
    if (a.ok()) {
      for (const std::string& w : a->state_warnings) view.warnings.push_back(w);
      view.agents.push_back(std::move(*a));
    } else {
      view.warnings.push_back("agent entry skipped: " + a.status().message());
    }
  }
  // Sorted by name, then DN; a second entry with a name already taken is
  // skipped, so every name maps to one agent whatever the server's order.
  std::sort(view.agents.begin(), view.agents.end(), [](const AgentRecord& x, const AgentRecord& y) {
    std::string a = Lower(x.name), b = Lower(y.name);
    return a != b ? a < b : NormalizeDn(x.dn) < NormalizeDn(y.dn);
  });
  std::vector<AgentRecord> unique;
  for (AgentRecord& a : view.agents) {
    if (!unique.empty() && EqualsIgnoreCase(unique.back().name, a.name)) {
      view.warnings.push_back("agent entry skipped: " + a.dn + ": cn: \"" + a.name +
                              "\" is already the name of " + unique.back().dn +
                              "; agent names must be unique, remove or rename one entry");
      continue;
    }
    unique.push_back(std::move(a));
  }
  view.agents = std::move(unique);

  for (const Entry& e : contents.policies) {
    Result<PolicyEntry> p = ParsePolicy(e);
    if (p.ok()) {
      view.policies.push_back(std::move(*p));
    } else {
      view.warnings.push_back("policy entry skipped: " + p.status().message());
    }
  }
  std::sort(view.policies.begin(), view.policies.end(),
            [](const PolicyEntry& x, const PolicyEntry& y) { return NormalizeDn(x.dn) < NormalizeDn(y.dn); });

  for (const Entry& g : contents.groups) {
    std::vector<std::string>& members = view.group_members[NormalizeDn(g.dn)];
    for (const std::string& m : g.Values("member")) members.push_back(NormalizeDn(m));
  }
  return view;
}

bool MayReadBackupsOf(const DirectoryView& view, const std::string& caller,
                      const std::string& owner) {
  if (EqualsIgnoreCase(caller, owner)) return true;
  for (const AgentRecord& a : view.agents) {
    if (!EqualsIgnoreCase(a.name, owner)) continue;
    for (const std::string& r : a.restore_for) {
      if (EqualsIgnoreCase(r, caller)) return true;
    }
  }
  return false;
}

std::vector<AgentRecord> LivePeers(const DirectoryView& view, const std::string& self_name,
                                   TimePoint now, std::chrono::seconds max_age) {
  std::vector<AgentRecord> peers;
  for (const AgentRecord& a : view.agents) {
    if (EqualsIgnoreCase(a.name, self_name) || !a.last_seen) continue;
    // A heartbeat up to max_age in the future (clock skew) also counts.
    auto age = now - *a.last_seen;
    if (age > max_age || age < -max_age) continue;
    peers.push_back(a);
  }
  std::sort(peers.begin(), peers.end(),
            [](const AgentRecord& x, const AgentRecord& y) { return Lower(x.name) < Lower(y.name); });
  return peers;
}

}  // namespace sparetime::directory
