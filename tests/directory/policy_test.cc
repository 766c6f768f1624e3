// Policy resolution: precedence (built-in < domain default < group < host),
// whole-value replacement of lists, the same-level tie rule independent of
// input order, sources, and the example DIT resolved for alpha and beta
// through the file directory.
#include "sparetime/directory/policy.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "sparetime/directory/directory.h"

namespace sparetime::directory {
namespace {

constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";
constexpr char kLabGroup[] = "cn=lab,ou=groups,ou=sparetime,dc=example,dc=org";

std::string PolicyDn(const std::string& name) { return "cn=" + name + ",ou=policies," + std::string(kBase); }

Entry Policy(const std::string& name, std::vector<std::pair<std::string, std::string>> attrs) {
  Entry e;
  e.dn = PolicyDn(name);
  e.Add("objectClass", "sparetimePolicy");
  e.Add("cn", name);
  for (auto& [k, v] : attrs) e.Add(k, v);
  return e;
}

Entry Agent(const std::string& name) {
  Entry e;
  e.dn = "cn=" + name + ",ou=agents," + std::string(kBase);
  e.Add("objectClass", "sparetimeAgent");
  e.Add("cn", name);
  e.Add("sparetimeAddress", "192.0.2.1");
  e.Add("sparetimePort", "7401");
  e.Add("sparetimePublicKey", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  return e;
}

Entry Group(const std::string& dn, const std::vector<std::string>& members) {
  Entry e;
  e.dn = dn;
  e.Add("objectClass", "groupOfNames");
  for (const std::string& m : members) e.Add("member", m);
  return e;
}

// default, a lab group policy and an alpha host policy.
DirectoryContents Layered() {
  DirectoryContents c;
  c.agents = {Agent("alpha"), Agent("beta"), Agent("gamma")};
  c.groups = {Group(kLabGroup, {"cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org",
                                "CN=Beta, OU=agents, ou=sparetime, dc=example, dc=org"})};
  c.policies = {
      Policy("default", {{"sparetimeDomainDefault", "TRUE"},
                         {"sparetimeReplicas", "2"},
                         {"sparetimeIdleMinutes", "30"},
                         {"sparetimeWindow", "Mon-Fri 19:00-07:00"},
                         {"sparetimeWindow", "Sat-Sun 00:00-24:00"},
                         {"sparetimeDevice", "/dev/sda"},
                         {"sparetimeDevice", "/dev/sdb"}}),
      Policy("lab", {{"sparetimeAppliesToGroup", kLabGroup},
                     {"sparetimeReplicas", "3"},
                     {"sparetimeWindow", "Mon-Sun 00:00-24:00"}}),
      Policy("host-alpha", {{"sparetimeAppliesToHost", "ALPHA"},
                            {"sparetimeReplicas", "4"},
                            {"sparetimeDevice", "/dev/nvme0n1"}}),
  };
  return c;
}

std::vector<std::string> WindowTexts(const EffectivePolicy& p) {
  std::vector<std::string> out;
  for (const TimeWindow& w : p.windows) out.push_back(w.text);
  return out;
}

TEST(ResolvePolicy, BuiltInDefaultsWhenNothingApplies) {
  EffectivePolicy p = ResolvePolicy(DirectoryView{}, "alpha");
  EffectivePolicy defaults;
  EXPECT_EQ(p.host, "alpha");
  EXPECT_EQ(p.replicas, defaults.replicas);
  EXPECT_EQ(p.chunk_size, 1u << 20);
  EXPECT_EQ(p.peer_max_age_minutes, 15u);
  EXPECT_EQ(p.caretaker_after_minutes, 1440u);
  EXPECT_EQ(p.peer_grace_days, 7u);
  EXPECT_EQ(p.departed_grace_days, 30u);
  EXPECT_TRUE(p.applied.empty());
  EXPECT_TRUE(p.warnings.empty());
  EXPECT_FALSE(p.migration_privileged);
  EXPECT_EQ(p.source.size(), 26u);  // every policy attribute
  EXPECT_EQ(p.max_age_seconds, 7 * 86400);
  for (const auto& [attr, src] : p.source) EXPECT_EQ(src, "built-in default") << attr;
}

TEST(ResolvePolicy, HostOverGroupOverDefault) {
  DirectoryView v = Parse(Layered());
  ASSERT_TRUE(v.warnings.empty());

  EffectivePolicy alpha = ResolvePolicy(v, "alpha");
  EXPECT_EQ(alpha.replicas, 4u);
  EXPECT_EQ(alpha.source["sparetimeReplicas"], PolicyDn("host-alpha"));
  EXPECT_EQ(alpha.idle_minutes, 30u);
  EXPECT_EQ(alpha.source["sparetimeIdleMinutes"], PolicyDn("default"));
  EXPECT_EQ(alpha.keep_daily, 7u);
  EXPECT_EQ(alpha.source["sparetimeKeepDaily"], "built-in default");
  EXPECT_EQ(alpha.applied, (std::vector<std::string>{PolicyDn("default"), PolicyDn("lab"),
                                                      PolicyDn("host-alpha")}));

  EffectivePolicy beta = ResolvePolicy(v, "beta");  // member through a differently written DN
  EXPECT_EQ(beta.replicas, 3u);
  EXPECT_EQ(beta.source["sparetimeReplicas"], PolicyDn("lab"));

  EffectivePolicy gamma = ResolvePolicy(v, "gamma");  // in no group
  EXPECT_EQ(gamma.replicas, 2u);
  EXPECT_EQ(gamma.applied, std::vector<std::string>{PolicyDn("default")});
}

TEST(ResolvePolicy, ListsAreReplacedWhole) {
  DirectoryView v = Parse(Layered());
  EffectivePolicy alpha = ResolvePolicy(v, "alpha");
  EXPECT_EQ(alpha.devices, std::vector<std::string>{"/dev/nvme0n1"});  // not merged with sda/sdb
  EXPECT_EQ(WindowTexts(alpha), std::vector<std::string>{"Mon-Sun 00:00-24:00"});
  EXPECT_EQ(alpha.source["sparetimeWindow"], PolicyDn("lab"));
  EffectivePolicy gamma = ResolvePolicy(v, "gamma");
  EXPECT_EQ(gamma.devices, (std::vector<std::string>{"/dev/sda", "/dev/sdb"}));
  EXPECT_EQ(WindowTexts(gamma), (std::vector<std::string>{"Mon-Fri 19:00-07:00", "Sat-Sun 00:00-24:00"}));
}

TEST(ResolvePolicy, HostWithoutAnEntryStillMatchesItsGroupAndName) {
  DirectoryContents c = Layered();
  c.agents.clear();  // alpha not registered yet
  EffectivePolicy alpha = ResolvePolicy(Parse(c), "alpha");
  EXPECT_EQ(alpha.replicas, 4u);
  EXPECT_EQ(WindowTexts(alpha), std::vector<std::string>{"Mon-Sun 00:00-24:00"});
}

TEST(ResolvePolicy, PolicyNamingHostsAndGroupsIsAHostPolicyForBoth) {
  DirectoryContents c = Layered();
  c.policies.push_back(Policy("both", {{"sparetimeAppliesToHost", "gamma"},
                                       {"sparetimeAppliesToGroup", kLabGroup},
                                       {"sparetimeKeepLast", "9"}}));
  DirectoryView v = Parse(c);
  EXPECT_EQ(ResolvePolicy(v, "gamma").keep_last, 9u);
  EXPECT_EQ(ResolvePolicy(v, "beta").keep_last, 9u);
  EXPECT_EQ(ResolvePolicy(v, "beta").source["sparetimeKeepLast"], PolicyDn("both"));
}

TEST(ResolvePolicy, SameLevelTieGoesToFirstDnWhateverTheOrder) {
  DirectoryContents c = Layered();
  c.policies.push_back(Policy("lab-b", {{"sparetimeAppliesToGroup", kLabGroup},
                                        {"sparetimeReplicas", "5"},
                                        {"sparetimeKeepLast", "8"}}));
  c.policies.push_back(Policy("lab-a", {{"sparetimeAppliesToGroup", kLabGroup},
                                        {"sparetimeReplicas", "6"},
                                        {"sparetimeKeepLast", "8"}}));
  std::sort(c.policies.begin(), c.policies.end(),
            [](const Entry& a, const Entry& b) { return a.dn < b.dn; });
  std::vector<EffectivePolicy> results;
  do {
    results.push_back(ResolvePolicy(Parse(c), "beta"));
  } while (std::next_permutation(c.policies.begin(), c.policies.end(),
                                 [](const Entry& a, const Entry& b) { return a.dn < b.dn; }));
  ASSERT_EQ(results.size(), 120u);
  for (const EffectivePolicy& p : results) {
    // cn=lab < cn=lab-a < cn=lab-b: "lab" sets replicas 3 and wins.
    EXPECT_EQ(p.replicas, 3u);
    EXPECT_EQ(p.source.at("sparetimeReplicas"), PolicyDn("lab"));
    EXPECT_EQ(p.keep_last, 8u);  // same value twice: no conflict
    EXPECT_EQ(p.source.at("sparetimeKeepLast"), PolicyDn("lab-a"));
    EXPECT_EQ(p.warnings, results[0].warnings);
    EXPECT_EQ(p.applied, results[0].applied);
  }
  // One warning per losing policy, naming both.
  ASSERT_EQ(results[0].warnings.size(), 2u);
  EXPECT_NE(results[0].warnings[0].find(PolicyDn("lab") + " and " + PolicyDn("lab-a")),
            std::string::npos)
      << results[0].warnings[0];
  EXPECT_NE(results[0].warnings[0].find("sparetimeReplicas"), std::string::npos);
  EXPECT_NE(results[0].warnings[1].find(PolicyDn("lab-b")), std::string::npos);
  // Lowest precedence first: within the group level the winner comes last.
  EXPECT_EQ(results[0].applied, (std::vector<std::string>{PolicyDn("default"), PolicyDn("lab-b"),
                                                          PolicyDn("lab-a"), PolicyDn("lab")}));
}

// The shipped example tree, read through the file directory.
TEST(ResolvePolicy, ExampleDitForAlphaAndBeta) {
  DirectoryConfig config;
  config.uri = SPARETIME_SOURCE_DIR "/conf/ldap/example-dit.ldif";
  config.base_dn = kBase;
  Result<std::unique_ptr<Directory>> dir = OpenDirectory(config);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  Result<DirectoryContents> contents = (*dir)->Fetch();
  ASSERT_TRUE(contents.ok()) << contents.status().ToString();
  EXPECT_EQ(contents->agents.size(), 2u);
  EXPECT_EQ(contents->policies.size(), 3u);
  EXPECT_EQ(contents->groups.size(), 1u);  // cn=lab; the admins group is named by no policy
  DirectoryView v = Parse(*contents);
  ASSERT_TRUE(v.warnings.empty()) << v.warnings[0];

  EffectivePolicy alpha = ResolvePolicy(v, "alpha");
  EXPECT_EQ(alpha.applied,
            (std::vector<std::string>{PolicyDn("default"), PolicyDn("lab"), PolicyDn("host-alpha")}));
  EXPECT_EQ(alpha.devices, (std::vector<std::string>{
                               "/dev/disk/by-id/nvme-eui.0025388b71b2c4d1",
                               "/dev/disk/by-id/ata-WDC_WD10EZEX-00BN5A0_WD-WCC3F1234567"}));
  EXPECT_EQ(WindowTexts(alpha), std::vector<std::string>{"Mon-Sun 00:00-24:00"});
  EXPECT_FALSE(alpha.ac_only);
  EXPECT_EQ(alpha.replicas, 3u);
  EXPECT_EQ(alpha.bandwidth_limit, 50000000u);
  EXPECT_TRUE(alpha.migration_allowed);
  EXPECT_EQ(alpha.migration_from, std::vector<std::string>{"beta"});
  EXPECT_EQ(alpha.idle_minutes, 15u);
  EXPECT_EQ(alpha.idle_cpu_percent, 10u);
  EXPECT_EQ(alpha.idle_io_pressure_percent, 5u);
  EXPECT_EQ(alpha.keep_last, 3u);
  EXPECT_EQ(alpha.keep_monthly, 6u);
  EXPECT_EQ(alpha.compression_level, 3);
  EXPECT_EQ(alpha.chunk_size, 1048576u);
  EXPECT_EQ(alpha.consistency_mode, "crash");
  EXPECT_EQ(alpha.max_freeze_seconds, 30u);
  EXPECT_EQ(alpha.snapshot_size, 0u);
  EXPECT_EQ(alpha.source["sparetimeMaxFreezeSeconds"], "built-in default");
  ASSERT_TRUE(alpha.escrow_public_key.has_value());
  EXPECT_EQ(alpha.peer_max_age_minutes, 15u);
  EXPECT_EQ(alpha.source["sparetimeBandwidthLimit"], PolicyDn("host-alpha"));
  EXPECT_EQ(alpha.source["sparetimeAcOnly"], PolicyDn("lab"));
  EXPECT_EQ(alpha.source["sparetimeEscrowPublicKey"], PolicyDn("default"));
  EXPECT_EQ(alpha.source["sparetimePeerMaxAgeMinutes"], "built-in default");
  EXPECT_TRUE(alpha.warnings.empty());

  EffectivePolicy beta = ResolvePolicy(v, "beta");
  EXPECT_EQ(beta.applied, (std::vector<std::string>{PolicyDn("default"), PolicyDn("lab")}));
  EXPECT_TRUE(beta.devices.empty());
  EXPECT_EQ(beta.source["sparetimeDevice"], "built-in default");
  EXPECT_EQ(WindowTexts(beta), std::vector<std::string>{"Mon-Sun 00:00-24:00"});
  EXPECT_FALSE(beta.ac_only);
  EXPECT_EQ(beta.replicas, 3u);
  EXPECT_EQ(beta.bandwidth_limit, 10000000u);
  EXPECT_FALSE(beta.migration_allowed);
  EXPECT_TRUE(beta.migration_from.empty());
  EXPECT_EQ(beta.escrow_public_key, alpha.escrow_public_key);
}

// The example file directory for a single box parses cleanly and gives "box"
// its devices and the lab's window.
TEST(ResolvePolicy, ShippedFileDirectoryExample) {
  DirectoryConfig config;
  config.uri = SPARETIME_SOURCE_DIR "/conf/directory.ldif";
  config.base_dn = kBase;
  Result<std::unique_ptr<Directory>> dir = OpenDirectory(config);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  Result<DirectoryContents> contents = (*dir)->Fetch();
  ASSERT_TRUE(contents.ok()) << contents.status().ToString();
  DirectoryView v = Parse(*contents);
  ASSERT_TRUE(v.warnings.empty()) << v.warnings[0];
  EXPECT_EQ(v.policies.size(), 3u);
  EffectivePolicy box = ResolvePolicy(v, "box");
  EXPECT_EQ(box.devices, std::vector<std::string>{"/dev/disk/by-id/nvme-eui.0025388b71b2c4d1"});
  EXPECT_EQ(WindowTexts(box), std::vector<std::string>{"Mon-Sun 00:00-24:00"});
  EXPECT_EQ(box.replicas, 1u);
  EXPECT_EQ(box.peer_max_age_minutes, 15u);
  EXPECT_TRUE(box.warnings.empty());
}

}  // namespace
}  // namespace sparetime::directory
