// Records: agent and policy validation (every error names the DN and the
// attribute), the directory view (malformed entries skipped with one warning
// each, groups normalised) and live-peer selection.
#include "sparetime/directory/records.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace sparetime::directory {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

constexpr char kAlphaKey[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr char kBetaKey[] = "Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0=";
constexpr char kAgents[] = ",ou=agents,ou=sparetime,dc=example,dc=org";
constexpr char kPolicies[] = ",ou=policies,ou=sparetime,dc=example,dc=org";

Entry AgentEntry(const std::string& name, const std::string& key = kAlphaKey) {
  Entry e;
  e.dn = "cn=" + name + kAgents;
  e.Add("objectClass", "sparetimeAgent");
  e.Add("cn", name);
  e.Add("sparetimeAddress", name + ".example.org");
  e.Add("sparetimePort", "7401");
  e.Add("sparetimePublicKey", key);
  e.Add("sparetimeLastSeen", "20261126040000Z");
  return e;
}

Entry PolicyWith(const std::string& name, const std::string& attr, const std::string& value) {
  Entry e;
  e.dn = "cn=" + name + kPolicies;
  e.Add("objectClass", "sparetimePolicy");
  e.Add("cn", name);
  e.Add("sparetimeDomainDefault", "TRUE");
  if (!attr.empty()) e.Add(attr, value);
  return e;
}

TimePoint Utc(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  using namespace std::chrono;
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s};
}

TEST(ParseAgent, ReadsEveryField) {
  Entry e = AgentEntry("alpha");
  e.Add("sparetimeSite", "building-a");
  e.Add("sparetimeCapacity", "500000000000");
  e.Add("sparetimeFree", "320000000000");
  e.Add("sparetimeVersion", "0.1.0");
  e.Add("sparetimeDeviceHeld", "beta:/dev/disk/by-id/nvme-eui.0025388b71b2c4d1");
  e.Add("userPassword", "{SSHA}whatever");
  Result<AgentRecord> a = ParseAgent(e);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->name, "alpha");
  EXPECT_EQ(a->dn, e.dn);
  EXPECT_EQ(a->address, "alpha.example.org");
  EXPECT_EQ(a->port, 7401);
  EXPECT_EQ(a->public_key[0], 0xd7);  // "11qY..." decodes to d7 5a 98 ...
  EXPECT_EQ(a->public_key[1], 0x5a);
  EXPECT_EQ(a->site, "building-a");
  EXPECT_EQ(a->capacity, 500000000000u);
  EXPECT_EQ(a->free, 320000000000u);
  EXPECT_EQ(a->last_seen, Utc(2026, 11, 26, 4, 0, 0));
  EXPECT_EQ(a->version, "0.1.0");
  EXPECT_EQ(a->devices_held,
            std::vector<std::string>{"beta:/dev/disk/by-id/nvme-eui.0025388b71b2c4d1"});
}

TEST(ParseAgent, GeneralizedTimeForms) {
  struct Case {
    const char* text;
    TimePoint want;
  };
  const Case cases[] = {
      {"20261126041500Z", Utc(2026, 11, 26, 4, 15, 0)},
      {"20261126051500+0100", Utc(2026, 11, 26, 4, 15, 0)},
      {"20261125231500-0500", Utc(2026, 11, 26, 4, 15, 0)},
      {"202611260415Z", Utc(2026, 11, 26, 4, 15, 0)},
      {"2026112604Z", Utc(2026, 11, 26, 4, 0, 0)},
      {"20261126041500.250Z", Utc(2026, 11, 26, 4, 15, 0) + std::chrono::milliseconds(250)},
      {"2026112604,5Z", Utc(2026, 11, 26, 4, 30, 0)},  // half an hour
      {"20280229000000Z", Utc(2028, 2, 29, 0, 0, 0)},
  };
  for (const Case& c : cases) {
    Entry e = AgentEntry("alpha");
    e.attributes["sparetimelastseen"] = {c.text};
    Result<AgentRecord> a = ParseAgent(e);
    ASSERT_TRUE(a.ok()) << c.text << ": " << a.status().ToString();
    EXPECT_EQ(a->last_seen, c.want) << c.text;
  }
}

// Every bad value: the error names the DN, the attribute and the value, and
// says what a valid value is.
TEST(ParseAgent, EveryErrorNamesEntryAttributeAndValidValue) {
  struct Case {
    const char* attr;
    std::vector<std::string> values;  // empty: attribute removed
    const char* hint;
  };
  const std::vector<Case> cases = {
      {"sparetimePort", {"0"}, "1 to 65535"},
      {"sparetimePort", {"65536"}, "1 to 65535"},
      {"sparetimePort", {"http"}, "not an integer"},
      {"sparetimePort", {"74O1"}, "not an integer"},
      {"sparetimePort", {"99999999999999999999999"}, "out of range"},
      {"sparetimePort", {"7401", "7402"}, "single-valued"},
      {"sparetimePort", {}, "missing"},
      {"sparetimePublicKey", {"abc"}, "44 characters"},
      {"sparetimePublicKey", {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}, "decodes to 31 bytes"},
      {"sparetimePublicKey", {"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}, "standard base64"},
      {"sparetimePublicKey", {}, "missing"},
      {"sparetimeAddress", {"alpha example"}, "host name or IP address"},
      {"sparetimeAddress", {"[::1]"}, "no brackets"},
      {"sparetimeAddress", {}, "missing"},
      {"sparetimeLastSeen", {"2026-11-26"}, "YYYYMMDDHHMMSS"},
      {"sparetimeLastSeen", {"20261301000000Z"}, "no such date"},
      {"sparetimeLastSeen", {"20270229000000Z"}, "no such date"},
      {"sparetimeLastSeen", {"20261126041500"}, "time zone"},
      {"sparetimeLastSeen", {"20261126041500+2500"}, "offset"},
      {"sparetimeCapacity", {"-1"}, "0 to"},
      {"sparetimeFree", {"lots"}, "not an integer"},
      {"sparetimeDeviceHeld", {"/dev/sda"}, "owner-host:device"},
      {"sparetimeDeviceHeld", {"beta:sda"}, "owner-host:device"},
      {"cn", {"al pha"}, "host name"},
      {"cn", {}, "missing"},
  };
  for (const Case& c : cases) {
    Entry e = AgentEntry("alpha");
    std::string lower = c.attr;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    e.attributes.erase(lower);
    for (const std::string& v : c.values) e.Add(c.attr, v);
    Result<AgentRecord> a = ParseAgent(e);
    ASSERT_FALSE(a.ok()) << c.attr << " accepted";
    const std::string m = a.status().message();
    EXPECT_EQ(a.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(m.starts_with(e.dn + ": ")) << m;
    EXPECT_NE(m.find(c.attr), std::string::npos) << m;
    EXPECT_NE(m.find(c.hint), std::string::npos) << "want \"" << c.hint << "\" in: " << m;
    if (c.values.size() == 1) {
      EXPECT_NE(m.find("\"" + c.values[0] + "\""), std::string::npos) << m;
    }
  }
}

TEST(ParsePolicy, ScopeFromTargets) {
  Entry e = PolicyWith("default", "sparetimeReplicas", "2");
  Result<PolicyEntry> p = ParsePolicy(e);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->scope, PolicyScope::kDomainDefault);
  EXPECT_EQ(p->name, "default");
  EXPECT_EQ(p->settings.replicas, 2u);
  EXPECT_FALSE(p->settings.idle_minutes.has_value());

  e.attributes["sparetimedomaindefault"] = {"FALSE"};
  e.Add("sparetimeAppliesToGroup", "cn=lab,ou=groups,ou=sparetime,dc=example,dc=org");
  ASSERT_TRUE(ParsePolicy(e).ok());
  EXPECT_EQ(ParsePolicy(e)->scope, PolicyScope::kGroup);

  e.Add("sparetimeAppliesToHost", "alpha");  // both: a host policy
  ASSERT_TRUE(ParsePolicy(e).ok());
  EXPECT_EQ(ParsePolicy(e)->scope, PolicyScope::kHost);
  EXPECT_EQ(ParsePolicy(e)->groups.size(), 1u);

  e.attributes.erase("sparetimeappliestogroup");
  EXPECT_EQ(ParsePolicy(e)->scope, PolicyScope::kHost);

  e.attributes.erase("sparetimeappliestohost");
  Result<PolicyEntry> none = ParsePolicy(e);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("applies to nothing"), std::string::npos);
  EXPECT_NE(none.status().message().find(e.dn), std::string::npos);
}

TEST(ParsePolicy, ReadsEverySetting) {
  Entry e = PolicyWith("p", "", "");
  const std::pair<const char*, const char*> values[] = {
      {"sparetimeDevice", "/dev/sda"},      {"sparetimeIdleMinutes", "20"},
      {"sparetimeIdleCpuPercent", "0"},     {"sparetimeIdleIoPressurePercent", "100"},
      {"sparetimeWindow", "Mon 01:00-02:00"}, {"sparetimeWindow", "Tue 01:00-02:00"},
      {"sparetimeAcOnly", "FALSE"},         {"sparetimeReplicas", "16"},
      {"sparetimeKeepLast", "1"},           {"sparetimeKeepDaily", "0"},
      {"sparetimeKeepWeekly", "52"},        {"sparetimeKeepMonthly", "120"},
      {"sparetimeBandwidthLimit", "0"},     {"sparetimeCompressionLevel", "19"},
      {"sparetimeChunkSize", "65536"},      {"sparetimeConsistencyMode", "Snapshot"},
      {"sparetimeMigrationAllowed", "TRUE"}, {"sparetimeMigrationFrom", "beta"},
      {"sparetimeMigrationPrivileged", "TRUE"},
      {"sparetimeEscrowPublicKey", kBetaKey}, {"sparetimePeerMaxAgeMinutes", "60"},
      {"sparetimeCaretakerAfterMinutes", "90"},
      {"sparetimeMaxFreezeSeconds", "45"},  {"sparetimeSnapshotSize", "2147483648"},
      {"sparetimePeerGraceDays", "0"},      {"sparetimeDepartedGraceDays", "3650"}};
  for (const auto& [attr, value] : values) e.Add(attr, value);
  Result<PolicyEntry> p = ParsePolicy(e);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const PolicySettings& s = p->settings;
  EXPECT_EQ(s.devices, std::vector<std::string>{"/dev/sda"});
  EXPECT_EQ(s.idle_minutes, 20u);
  EXPECT_EQ(s.idle_cpu_percent, 0u);
  EXPECT_EQ(s.idle_io_pressure_percent, 100u);
  ASSERT_EQ(s.windows->size(), 2u);
  EXPECT_EQ((*s.windows)[1].text, "Tue 01:00-02:00");
  EXPECT_EQ(s.ac_only, false);
  EXPECT_EQ(s.replicas, 16u);
  EXPECT_EQ(s.keep_last, 1u);
  EXPECT_EQ(s.keep_daily, 0u);
  EXPECT_EQ(s.keep_weekly, 52u);
  EXPECT_EQ(s.keep_monthly, 120u);
  EXPECT_EQ(s.bandwidth_limit, 0u);
  EXPECT_EQ(s.compression_level, 19);
  EXPECT_EQ(s.chunk_size, 65536u);
  EXPECT_EQ(s.consistency_mode, "snapshot");
  EXPECT_EQ(s.migration_allowed, true);
  EXPECT_EQ(s.migration_from, std::vector<std::string>{"beta"});
  EXPECT_EQ(s.migration_privileged, true);
  EXPECT_TRUE(s.escrow_public_key.has_value());
  EXPECT_EQ(s.peer_max_age_minutes, 60u);
  EXPECT_EQ(s.peer_grace_days, 0u);
  EXPECT_EQ(s.departed_grace_days, 3650u);
  EXPECT_EQ(s.caretaker_after_minutes, 90u);
  EXPECT_EQ(s.max_freeze_seconds, 45u);
  EXPECT_EQ(s.snapshot_size, 2147483648u);
}

TEST(ParsePolicy, EveryErrorNamesEntryAttributeAndValidValue) {
  struct Case {
    const char* attr;
    const char* value;
    const char* hint;
  };
  const Case cases[] = {
      {"sparetimeIdleMinutes", "0", "1 to 1440"},
      {"sparetimeIdleCpuPercent", "101", "0 to 100"},
      {"sparetimeIdleIoPressurePercent", "-1", "0 to 100"},
      {"sparetimeReplicas", "0", "1 to 16"},
      {"sparetimeReplicas", "17", "1 to 16"},
      {"sparetimeKeepLast", "0", "1 to 10000"},
      {"sparetimeKeepDaily", "x", "not an integer"},
      {"sparetimeBandwidthLimit", "-5", "0 to"},
      {"sparetimeCompressionLevel", "0", "1 to 19"},
      {"sparetimeCompressionLevel", "20", "1 to 19"},
      {"sparetimeChunkSize", "100000", "power of two"},
      {"sparetimeChunkSize", "32768", "65536 to 4194304"},
      {"sparetimeChunkSize", "8388608", "65536 to 4194304"},
      {"sparetimeConsistencyMode", "fast", "auto, crash, freeze or snapshot"},
      {"sparetimeMaxFreezeSeconds", "0", "1 to 3600"},
      {"sparetimeMaxFreezeSeconds", "3601", "1 to 3600"},
      {"sparetimeSnapshotSize", "-1", "0 to"},
      {"sparetimeAcOnly", "yes", "TRUE or FALSE"},
      {"sparetimeAcOnly", "true", "TRUE or FALSE"},
      {"sparetimeMigrationAllowed", "1", "TRUE or FALSE"},
      {"sparetimeMigrationPrivileged", "yes", "TRUE or FALSE"},
      {"sparetimeDomainDefault", "maybe", "TRUE or FALSE"},
      {"sparetimeWindow", "Mon 25:00-01:00", "HH:MM"},
      {"sparetimeWindow", "weekdays 19:00-07:00", "Mon Tue Wed"},
      {"sparetimeDevice", "sda", "absolute device path"},
      {"sparetimeMigrationFrom", "beta*", "host name"},
      {"sparetimeAppliesToHost", "(alpha)", "host name"},
      {"sparetimeAppliesToGroup", "lab", "not a DN"},
      {"sparetimeEscrowPublicKey", "short", "32 bytes"},
      {"sparetimePeerMaxAgeMinutes", "0", "1 to 10080"},
      {"sparetimePeerGraceDays", "3651", "0 to 3650"},
      {"sparetimeDepartedGraceDays", "-1", "0 to 3650"},
      {"sparetimeCaretakerAfterMinutes", "525601", "0 to 525600"},
  };
  for (const Case& c : cases) {
    Entry e = PolicyWith("p", c.attr, c.value);
    if (std::string(c.attr) == "sparetimeDomainDefault") e.attributes["sparetimedomaindefault"] = {c.value};
    Result<PolicyEntry> p = ParsePolicy(e);
    ASSERT_FALSE(p.ok()) << c.attr << ": " << c.value << " accepted";
    const std::string m = p.status().message();
    EXPECT_TRUE(m.starts_with(e.dn + ": ")) << m;
    EXPECT_NE(m.find(c.attr), std::string::npos) << m;
    EXPECT_NE(m.find(c.value), std::string::npos) << m;
    EXPECT_NE(m.find(c.hint), std::string::npos) << "want \"" << c.hint << "\" in: " << m;
  }
}

TEST(Parse, MalformedEntriesAreSkippedWithOneWarningEach) {
  DirectoryContents c;
  c.agents.push_back(AgentEntry("beta", kBetaKey));
  c.agents.push_back(AgentEntry("alpha"));
  Entry bad_port = AgentEntry("gamma");
  bad_port.attributes["sparetimeport"] = {"0"};
  c.agents.push_back(bad_port);
  Entry no_key = AgentEntry("delta");
  no_key.attributes.erase("sparetimepublickey");
  no_key.Add("sparetimePort", "1");  // a second problem: still one warning
  c.agents.push_back(no_key);
  Entry duplicate = AgentEntry("ALPHA");
  duplicate.dn = "cn=ALPHA,ou=more,ou=agents,ou=sparetime,dc=example,dc=org";
  c.agents.push_back(duplicate);

  c.policies.push_back(PolicyWith("good", "sparetimeReplicas", "3"));
  c.policies.push_back(PolicyWith("bad", "sparetimeReplicas", "99"));
  Entry nothing = PolicyWith("nothing", "", "");
  nothing.attributes.erase("sparetimedomaindefault");
  c.policies.push_back(nothing);

  Entry group;
  group.dn = "CN=Lab, OU=Groups,ou=sparetime,dc=example,dc=org";
  group.Add("objectClass", "groupOfNames");
  group.Add("member", "CN=Alpha,OU=Agents,ou=sparetime,dc=example,dc=org");
  c.groups.push_back(group);

  DirectoryView v = Parse(c);
  ASSERT_EQ(v.agents.size(), 2u);
  EXPECT_EQ(v.agents[0].name, "alpha");  // sorted by name
  EXPECT_EQ(v.agents[1].name, "beta");
  ASSERT_EQ(v.policies.size(), 1u);
  EXPECT_EQ(v.policies[0].name, "good");
  ASSERT_EQ(v.warnings.size(), 5u);
  auto warned = [&](const std::string& dn, const std::string& attr) {
    int n = 0;
    for (const std::string& w : v.warnings) {
      if (w.find(dn) != std::string::npos && w.find(attr) != std::string::npos) ++n;
    }
    return n;
  };
  EXPECT_EQ(warned(bad_port.dn, "sparetimePort"), 1);
  EXPECT_EQ(warned(no_key.dn, "sparetimePort"), 1);  // the first problem found
  EXPECT_EQ(warned(duplicate.dn, "already the name of"), 1);
  EXPECT_EQ(warned("cn=bad" + std::string(kPolicies), "sparetimeReplicas"), 1);
  EXPECT_EQ(warned(nothing.dn, "applies to nothing"), 1);

  ASSERT_EQ(v.group_members.count("cn=lab,ou=groups,ou=sparetime,dc=example,dc=org"), 1u);
  EXPECT_EQ(v.group_members.at("cn=lab,ou=groups,ou=sparetime,dc=example,dc=org"),
            std::vector<std::string>{"cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org"});
}

TEST(LivePeers, ExcludesSelfStaleAndSilentAgents) {
  DirectoryContents c;
  const TimePoint now = Utc(2026, 11, 26, 4, 20, 0);
  auto at = [&](const std::string& name, const char* last_seen) {
    Entry e = AgentEntry(name);
    if (last_seen == nullptr) {
      e.attributes.erase("sparetimelastseen");
    } else {
      e.attributes["sparetimelastseen"] = {last_seen};
    }
    c.agents.push_back(e);
  };
  at("self", "20261126042000Z");
  at("zulu", "20261126041000Z");      // 10 minutes ago
  at("fresh", "20261126042000Z");     // now
  at("stale", "20261126040459Z");     // 15 min 1 s ago
  at("edge", "20261126040500Z");      // exactly 15 min ago: still live
  at("silent", nullptr);              // never heartbeated
  at("future", "20261126042500Z");    // 5 minutes ahead (clock skew)
  at("farfuture", "20261127042000Z");  // a day ahead: not trusted
  DirectoryView v = Parse(c);
  ASSERT_TRUE(v.warnings.empty());
  std::vector<std::string> names;
  for (const AgentRecord& a : LivePeers(v, "SELF", now, minutes(15))) names.push_back(a.name);
  EXPECT_EQ(names, (std::vector<std::string>{"edge", "fresh", "future", "zulu"}));
  EXPECT_TRUE(LivePeers(v, "self", now, seconds(0)).size() == 1);  // only "fresh"
}

}  // namespace
}  // namespace sparetime::directory

namespace sparetime::directory {
namespace {

// sparetimeRestoreFor: who, besides the owner, may read an owner's backups
// from the peers (docs/peers.md "Who may do what").
TEST(MayReadBackupsOf, OwnerAndTheAgentsItsEntryNamesOnly) {
  DirectoryContents c;
  Entry alpha = AgentEntry("alpha");
  alpha.Add("sparetimeRestoreFor", "Rescue-1");
  alpha.Add("sparetimeRestoreFor", "admin-box");
  c.agents.push_back(alpha);
  c.agents.push_back(AgentEntry("beta", kBetaKey));
  DirectoryView v = Parse(c);
  ASSERT_EQ(v.agents.size(), 2u);
  EXPECT_EQ(v.agents[0].restore_for, (std::vector<std::string>{"Rescue-1", "admin-box"}));
  EXPECT_TRUE(v.agents[1].restore_for.empty());
  EXPECT_TRUE(MayReadBackupsOf(v, "alpha", "alpha"));
  EXPECT_TRUE(MayReadBackupsOf(v, "ALPHA", "alpha"));
  EXPECT_TRUE(MayReadBackupsOf(v, "rescue-1", "alpha"));
  EXPECT_TRUE(MayReadBackupsOf(v, "admin-box", "Alpha"));
  EXPECT_FALSE(MayReadBackupsOf(v, "beta", "alpha"));
  EXPECT_FALSE(MayReadBackupsOf(v, "rescue-1", "beta"));
  EXPECT_FALSE(MayReadBackupsOf(v, "rescue-1", "unknown"));
  // A value that is not a host name leaves the entry out, with a warning.
  Entry bad = AgentEntry("gamma");
  bad.Add("sparetimeRestoreFor", "not a host");
  c.agents.push_back(bad);
  DirectoryView w = Parse(c);
  EXPECT_EQ(w.agents.size(), 2u);
  ASSERT_EQ(w.warnings.size(), 1u);
  EXPECT_NE(w.warnings[0].find("sparetimeRestoreFor"), std::string::npos) << w.warnings[0];
}

}  // namespace
}  // namespace sparetime::directory
