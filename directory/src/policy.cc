// Policy resolution (precedence and tie rule in policy.h, described for
// admins in docs/ldap.md "How policies combine").
//
// Invariants: the result depends only on the set of policies and groups, not
// on the order the directory returned them in; every setting has a source;
// a more specific level replaces a value whole, lists included.
#include "sparetime/directory/policy.h"

#include <algorithm>
#include <cctype>

#include "values.h"

namespace sparetime::directory {
namespace {

constexpr char kBuiltIn[] = "built-in default";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Text of a value for conflict warnings.
std::string Show(uint64_t v) { return std::to_string(v); }
std::string Show(int32_t v) { return std::to_string(v); }
std::string Show(int64_t v) { return std::to_string(v); }
std::string Show(uint32_t v) { return std::to_string(v); }
std::string Show(bool v) { return v ? "TRUE" : "FALSE"; }
std::string Show(const std::string& v) { return v; }
std::string Show(const PublicKey& v) { return EncodeKey(v); }
std::string Show(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return "[" + out + "]";
}
std::string Show(const std::vector<TimeWindow>& v) {
  std::string out;
  for (const TimeWindow& w : v) out += (out.empty() ? "" : ", ") + w.text;
  return "[" + out + "]";
}

template <typename T>
bool Same(const T& a, const T& b) {
  return a == b;
}
bool Same(const std::vector<TimeWindow>& a, const std::vector<TimeWindow>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const TimeWindow& x, const TimeWindow& y) {
    return x.days == y.days && x.start_minute == y.start_minute && x.end_minute == y.end_minute;
  });
}

const char* LevelName(PolicyScope scope) {
  switch (scope) {
    case PolicyScope::kDomainDefault:
      return "domain default";
    case PolicyScope::kGroup:
      return "group";
    case PolicyScope::kHost:
      return "host";
  }
  return "?";
}

// Merges one level's policies (sorted by normalised DN) into `out`.
class LevelMerger {
 public:
  LevelMerger(const std::vector<const PolicyEntry*>& level, EffectivePolicy& out)
      : level_(level), out_(out) {}

  template <typename T, typename U>
  void Merge(const char* attribute, std::optional<T> PolicySettings::*from, U EffectivePolicy::*to) {
    const PolicyEntry* winner = nullptr;
    for (const PolicyEntry* p : level_) {
      const std::optional<T>& value = p->settings.*from;
      if (!value) continue;
      if (winner == nullptr) {
        winner = p;
      } else if (!Same(*value, *(winner->settings.*from))) {
        out_.warnings.push_back(std::string(LevelName(p->scope)) + " policies " + winner->dn +
                                " and " + p->dn + " both apply and set " + attribute +
                                " differently (" + Show(*(winner->settings.*from)) + " vs " +
                                Show(*value) + "); using " + winner->dn +
                                " (the DN that sorts first); make them agree or remove one");
      }
    }
    if (winner == nullptr) return;
    out_.*to = *(winner->settings.*from);
    out_.source[attribute] = winner->dn;
  }

 private:
  const std::vector<const PolicyEntry*>& level_;
  EffectivePolicy& out_;
};

void MergeLevel(const std::vector<const PolicyEntry*>& level, EffectivePolicy& out) {
  LevelMerger m(level, out);
  using S = PolicySettings;
  using E = EffectivePolicy;
  m.Merge("sparetimeDevice", &S::devices, &E::devices);
  m.Merge("sparetimeIdleMinutes", &S::idle_minutes, &E::idle_minutes);
  m.Merge("sparetimeIdleCpuPercent", &S::idle_cpu_percent, &E::idle_cpu_percent);
  m.Merge("sparetimeIdleIoPressurePercent", &S::idle_io_pressure_percent,
          &E::idle_io_pressure_percent);
  m.Merge("sparetimeWindow", &S::windows, &E::windows);
  m.Merge("sparetimeAcOnly", &S::ac_only, &E::ac_only);
  m.Merge("sparetimeReplicas", &S::replicas, &E::replicas);
  m.Merge("sparetimeKeepLast", &S::keep_last, &E::keep_last);
  m.Merge("sparetimeKeepDaily", &S::keep_daily, &E::keep_daily);
  m.Merge("sparetimeKeepWeekly", &S::keep_weekly, &E::keep_weekly);
  m.Merge("sparetimeKeepMonthly", &S::keep_monthly, &E::keep_monthly);
  m.Merge("sparetimeBandwidthLimit", &S::bandwidth_limit, &E::bandwidth_limit);
  m.Merge("sparetimeCompressionLevel", &S::compression_level, &E::compression_level);
  m.Merge("sparetimeChunkSize", &S::chunk_size, &E::chunk_size);
  m.Merge("sparetimeConsistencyMode", &S::consistency_mode, &E::consistency_mode);
  m.Merge("sparetimeMaxFreezeSeconds", &S::max_freeze_seconds, &E::max_freeze_seconds);
  m.Merge("sparetimeSnapshotSize", &S::snapshot_size, &E::snapshot_size);
  m.Merge("sparetimeMigrationAllowed", &S::migration_allowed, &E::migration_allowed);
  m.Merge("sparetimeMigrationFrom", &S::migration_from, &E::migration_from);
  m.Merge("sparetimeMigrationPrivileged", &S::migration_privileged, &E::migration_privileged);
  m.Merge("sparetimeEscrowPublicKey", &S::escrow_public_key, &E::escrow_public_key);
  m.Merge("sparetimePeerMaxAgeMinutes", &S::peer_max_age_minutes, &E::peer_max_age_minutes);
  m.Merge("sparetimeMaxAge", &S::max_age_seconds, &E::max_age_seconds);
  m.Merge("sparetimePeerGraceDays", &S::peer_grace_days, &E::peer_grace_days);
  m.Merge("sparetimeDepartedGraceDays", &S::departed_grace_days, &E::departed_grace_days);
  m.Merge("sparetimeCaretakerAfterMinutes", &S::caretaker_after_minutes,
          &E::caretaker_after_minutes);
}

// Every attribute a policy can set, all sourced from the built-in defaults.
void SetBuiltInSources(EffectivePolicy& out) {
  for (const char* attribute :
       {"sparetimeDevice", "sparetimeIdleMinutes", "sparetimeIdleCpuPercent",
        "sparetimeIdleIoPressurePercent", "sparetimeWindow", "sparetimeAcOnly", "sparetimeReplicas",
        "sparetimeKeepLast", "sparetimeKeepDaily", "sparetimeKeepWeekly", "sparetimeKeepMonthly",
        "sparetimeBandwidthLimit", "sparetimeCompressionLevel", "sparetimeChunkSize",
        "sparetimeConsistencyMode", "sparetimeMaxFreezeSeconds", "sparetimeSnapshotSize",
        "sparetimeMigrationAllowed", "sparetimeMigrationFrom", "sparetimeMigrationPrivileged",
        "sparetimeEscrowPublicKey", "sparetimePeerMaxAgeMinutes", "sparetimeMaxAge",
        "sparetimePeerGraceDays", "sparetimeDepartedGraceDays",
        "sparetimeCaretakerAfterMinutes"}) {
    out.source[attribute] = kBuiltIn;
  }
}

// Is the host (normalised agent DN `host_dn`, empty when it has no entry) a
// member of the group? Without an entry, cn=<host> directly under any
// ou=agents counts.
bool IsMember(const DirectoryView& view, const std::string& group_dn, const std::string& host_dn,
              const std::string& host) {
  auto it = view.group_members.find(NormalizeDn(group_dn));
  if (it == view.group_members.end()) return false;
  std::string prefix = "cn=" + Lower(host) + ",ou=agents,";
  return std::any_of(it->second.begin(), it->second.end(), [&](const std::string& member) {
    return host_dn.empty() ? member.starts_with(prefix) : member == host_dn;
  });
}

bool Applies(const DirectoryView& view, const PolicyEntry& p, const std::string& host_dn,
             const std::string& host) {
  if (p.scope == PolicyScope::kDomainDefault) return true;
  bool named = std::any_of(p.hosts.begin(), p.hosts.end(),
                           [&](const std::string& h) { return EqualsIgnoreCase(h, host); });
  return named || std::any_of(p.groups.begin(), p.groups.end(), [&](const std::string& g) {
           return IsMember(view, g, host_dn, host);
         });
}

}  // namespace

EffectivePolicy ResolvePolicy(const DirectoryView& view, const std::string& host) {
  EffectivePolicy out;
  out.host = host;
  SetBuiltInSources(out);

  std::string host_dn;
  for (const AgentRecord& a : view.agents) {
    if (EqualsIgnoreCase(a.name, host)) host_dn = NormalizeDn(a.dn);
  }
  // Within a level the DN that sorts first wins, whatever the input order.
  std::vector<const PolicyEntry*> sorted;
  for (const PolicyEntry& p : view.policies) sorted.push_back(&p);
  std::sort(sorted.begin(), sorted.end(), [](const PolicyEntry* a, const PolicyEntry* b) {
    return NormalizeDn(a->dn) < NormalizeDn(b->dn);
  });
  for (PolicyScope scope : {PolicyScope::kDomainDefault, PolicyScope::kGroup, PolicyScope::kHost}) {
    std::vector<const PolicyEntry*> level;
    for (const PolicyEntry* p : sorted) {
      if (p->scope == scope && Applies(view, *p, host_dn, host)) level.push_back(p);
    }
    MergeLevel(level, out);
    // `applied` lists lowest precedence first; within a level the winner of
    // ties (the first DN) has the highest precedence, so it comes last.
    for (auto it = level.rbegin(); it != level.rend(); ++it) out.applied.push_back((*it)->dn);
  }
  return out;
}

}  // namespace sparetime::directory
