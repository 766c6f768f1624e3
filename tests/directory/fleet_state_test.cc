// Fleet state (issue 23 part 5): the JSON encoding of what an agent
// publishes about its backups round-trips exactly; the parser is strict and
// bounded; a malformed value written by a broken agent is skipped with one
// warning naming the entry, and the agent and its other values stay listed;
// sparetimeMaxAge resolves like every policy value.
#include "sparetime/directory/fleet_state.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sparetime/directory/policy.h"
#include "sparetime/directory/records.h"
#include "directory/fleet_state_testing.h"

namespace sparetime::directory {
namespace {

constexpr char kKey[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr char kKey2[] = "Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0=";

Entry AgentEntry(const std::string& name, const std::string& key) {
  Entry e;
  e.dn = "cn=" + name + ",ou=agents,ou=sparetime,dc=example,dc=org";
  e.Add("objectClass", "sparetimeAgent");
  e.Add("cn", name);
  e.Add("sparetimeAddress", name + ".example.org");
  e.Add("sparetimePort", "7401");
  e.Add("sparetimePublicKey", key);
  return e;
}

using directory::testing::Dev;
using directory::testing::Health;

DeviceBackupState Vdb() {
  return Dev("/dev/vdb", 1765142000, 1073741824, "3f9a0c11d2e4b5a6", 12, 52428800, true);
}

TEST(FleetState, EncodingIsExactAndRoundTrips) {
  EXPECT_EQ(EncodeDeviceState(Vdb()),
            "{\"device\":\"/dev/vdb\",\"forced\":true,\"seconds\":12,\"size\":1073741824,"
            "\"snapshot\":\"3f9a0c11d2e4b5a6\",\"stored\":52428800,\"time\":1765142000}");
  Result<DeviceBackupState> back = ParseDeviceState(EncodeDeviceState(Vdb()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, Vdb());
  DeviceBackupState never = Dev("/dev/sda");
  EXPECT_EQ(*ParseDeviceState(EncodeDeviceState(never)), never);

  BackupHealth h = Health(2, 1200, 3, 1765000000, "backup /dev/vdb: \"quoted\" and ünïcode", 1765100000);
  Result<BackupHealth> hb = ParseBackupHealth(EncodeBackupHealth(h));
  ASSERT_TRUE(hb.ok()) << hb.status().ToString();
  EXPECT_EQ(*hb, h);
  // A long error is cut to kMaxErrorChars and the value stays under the bound.
  h.last_error = std::string(5000, 'x');
  std::string encoded = EncodeBackupHealth(h);
  EXPECT_LE(encoded.size(), kMaxStateValueBytes);
  EXPECT_EQ(ParseBackupHealth(encoded)->last_error, std::string(kMaxErrorChars, 'x'));
}

TEST(FleetState, MalformedValuesAreRefusedWithTheirReason) {
  struct Case {
    std::string value;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"not json", "is not a JSON object"},
      {"[1,2]", "is not a JSON object"},
      {"{\"time\":1,\"size\":1,\"snapshot\":\"ab\"}", "has no \"device\""},
      {"{\"device\":\"vdb\",\"time\":1,\"size\":1,\"snapshot\":\"ab\"}", "not an absolute path"},
      {"{\"device\":\"/dev/vdb\",\"time\":1.5,\"size\":1,\"snapshot\":\"ab\"}",
       "\"time\" that is not an integer"},
      {"{\"device\":\"/dev/vdb\",\"time\":\"1\",\"size\":1,\"snapshot\":\"ab\"}",
       "\"time\" that is not an integer"},
      {"{\"device\":\"/dev/vdb\",\"time\":-5,\"size\":1,\"snapshot\":\"ab\"}", "out of range"},
      {"{\"device\":\"/dev/vdb\",\"time\":1,\"size\":18446744073709551615,\"snapshot\":\"ab\"}",
       "out of range"},
      {"{\"device\":\"/dev/vdb\",\"time\":1,\"size\":1,\"snapshot\":\"XYZ\"}", "not a lower-case hex id"},
      {"{\"device\":\"/dev/vdb\",\"time\":1,\"size\":1}", "has a \"time\" but no \"snapshot\""},
      {"{\"device\":\"/dev/vdb\",\"time\":1,\"size\":1,\"snapshot\":\"ab\",\"forced\":1}",
       "\"forced\" that is not true or false"},
      {"{\"device\":\"/dev/vdb\",\"pad\":\"" + std::string(3000, 'a') + "\"}", "at most 2048"},
  };
  for (const Case& c : cases) {
    Result<DeviceBackupState> s = ParseDeviceState(c.value);
    ASSERT_FALSE(s.ok()) << c.value;
    EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(c.why), std::string::npos) << s.status().message();
    EXPECT_EQ(s.status().message().rfind("sparetimeBackupState: ", 0), 0u) << s.status().message();
  }
  EXPECT_NE(ParseBackupHealth("{\"replicas\":2}").status().message().find("has no \"healthy\""),
            std::string::npos);
  EXPECT_NE(ParseBackupHealth("{\"replicas\":99,\"healthy\":1,\"under_replicated\":0}")
                .status().message().find("above 16"),
            std::string::npos);
  // Unknown keys (a newer agent) are ignored.
  Result<DeviceBackupState> newer =
      ParseDeviceState("{\"device\":\"/dev/vdb\",\"time\":0,\"size\":0,\"colour\":\"blue\"}");
  ASSERT_TRUE(newer.ok()) << newer.status().ToString();
  EXPECT_EQ(newer->device, "/dev/vdb");
}

// The bad-input row: a broken agent wrote garbage into its own entry. Its
// value is skipped with one warning; its good values and every other agent
// are still listed.
TEST(FleetState, AMalformedAttributeIsSkippedWithAWarningAndTheOthersListed) {
  DirectoryContents c;
  Entry broken = AgentEntry("alpha", kKey);
  broken.Add("sparetimeBackupState", EncodeDeviceState(Vdb()));
  broken.Add("sparetimeBackupState", "{\"device\":\"/dev/vdc\",\"time\":\"yesterday\"}");
  broken.Add("sparetimeBackupHealth", "{oops");
  c.agents.push_back(broken);
  Entry good = AgentEntry("beta", kKey2);
  DeviceBackupState sda = Dev("/dev/sda", 1765000000, 4096, "00ff");
  good.Add("sparetimeBackupState", EncodeDeviceState(sda));
  good.Add("sparetimeBackupHealth", EncodeBackupHealth(Health(2, 7, 0)));
  c.agents.push_back(good);
  DirectoryView view = Parse(c);
  ASSERT_EQ(view.agents.size(), 2u);
  EXPECT_EQ(view.agents[0].name, "alpha");
  EXPECT_EQ(view.agents[0].backups, std::vector<DeviceBackupState>{Vdb()});
  EXPECT_FALSE(view.agents[0].health.has_value());
  EXPECT_EQ(view.agents[1].backups, std::vector<DeviceBackupState>{sda});
  ASSERT_TRUE(view.agents[1].health.has_value());
  EXPECT_EQ(view.agents[1].health->healthy, 7u);
  ASSERT_EQ(view.warnings.size(), 2u);
  EXPECT_EQ(view.warnings[0].rfind(broken.dn + ": value skipped: sparetimeBackupState: ", 0), 0u)
      << view.warnings[0];
  EXPECT_NE(view.warnings[0].find("\"time\" that is not an integer"), std::string::npos);
  EXPECT_EQ(view.warnings[1].rfind(broken.dn + ": value skipped: sparetimeBackupHealth: ", 0), 0u)
      << view.warnings[1];
}

TEST(FleetState, OverdueAndMaxAge) {
  DeviceBackupState s = Vdb();
  EXPECT_FALSE(IsOverdue(s, s.time + 3 * 86400, 3 * 86400));
  EXPECT_TRUE(IsOverdue(s, s.time + 3 * 86400 + 1, 3 * 86400));
  EXPECT_TRUE(IsOverdue(Dev("/dev/sda"), 1, 3 * 86400));
  EXPECT_EQ(*ParseMaxAge("3d"), 3 * 86400);
  EXPECT_EQ(*ParseMaxAge("36h"), 36 * 3600);
  EXPECT_EQ(*ParseMaxAge("90m"), 90 * 60);
  EXPECT_EQ(*ParseMaxAge("2w"), 14 * 86400);
  for (const char* bad : {"", "3", "d", "0d", "-1d", "30m", "366d", "3x", "1.5d", "99999999999999w"}) {
    Result<int64_t> r = ParseMaxAge(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("e.g. 3d or 36h"), std::string::npos) << r.status().message();
  }
}

TEST(FleetState, MaxAgeResolvesLikeEveryPolicyValue) {
  DirectoryContents c;
  c.agents.push_back(AgentEntry("alpha", kKey));
  Entry def;
  def.dn = "cn=default,ou=policies,ou=sparetime,dc=example,dc=org";
  def.Add("objectClass", "sparetimePolicy");
  def.Add("cn", "default");
  def.Add("sparetimeDomainDefault", "TRUE");
  def.Add("sparetimeMaxAge", "3d");
  Entry host;
  host.dn = "cn=alpha,ou=policies,ou=sparetime,dc=example,dc=org";
  host.Add("objectClass", "sparetimePolicy");
  host.Add("cn", "alpha");
  host.Add("sparetimeAppliesToHost", "alpha");
  host.Add("sparetimeMaxAge", "36h");
  c.policies = {def};
  EXPECT_EQ(ResolvePolicy(Parse(c), "alpha").max_age_seconds, 3 * 86400);
  EXPECT_EQ(ResolvePolicy(Parse(c), "alpha").source.at("sparetimeMaxAge"), def.dn);
  c.policies.push_back(host);
  EXPECT_EQ(ResolvePolicy(Parse(c), "alpha").max_age_seconds, 36 * 3600);
  EXPECT_EQ(ResolvePolicy(Parse(c), "beta").max_age_seconds, 3 * 86400);
  EXPECT_EQ(ResolvePolicy(DirectoryView{}, "x").max_age_seconds, 7 * 86400);  // built-in
  // A bad value rejects the policy entry as a whole (fail closed), with one warning.
  c.policies[1].attributes["sparetimemaxage"] = {"soon"};
  DirectoryView v = Parse(c);
  EXPECT_EQ(v.policies.size(), 1u);
  ASSERT_EQ(v.warnings.size(), 1u);
  EXPECT_NE(v.warnings[0].find("sparetimeMaxAge"), std::string::npos) << v.warnings[0];
}

}  // namespace
}  // namespace sparetime::directory
