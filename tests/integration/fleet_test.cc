// The fleet view (issue 23 parts 5 and 7) with a real sparetimed: its state
// directory holds a real catalog and chunk-location database (written
// through the real Catalog/ChunkLocations, as its jobs do); at its heartbeat
// it publishes sparetimeBackupState/Health in its own entry — in the LDIF
// file directory, and in a real slapd as itself under the project's ACLs —
// writes the metrics file (and says so, then recovers, when the textfile
// directory is missing), and `sparetime fleet` lists every host from the
// directory alone: ages, overdue by each host's sparetimeMaxAge, replica
// health, free space; a malformed value written by a broken agent is
// skipped with a warning and the others listed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/fd.h"
#include "sparetime/directory/fleet_state.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/replication/chunk_locations.h"
#include "testutil/agent_process.h"
#include "testutil/slapd.h"
#include "testutil/testutil.h"
#include "directory/fleet_state_testing.h"

namespace sparetime::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";
constexpr char kBroken[] = "{\"device\":\"/dev/vdz\",\"time\":\"yesterday\"}";

std::string AgentDn(const std::string& name) { return "cn=" + name + ",ou=agents," + kBase; }

using directory::testing::Dev;
using directory::testing::Health;

int64_t Now() { return ToUnixSeconds(SystemClock().WallNow()); }

// alpha's backups as its jobs leave them: two snapshots of /dev/vdb (the
// newer 2 h old), chunks on peers (one on 2 peers, one on 1).
std::string SeedState(const std::string& state_dir, int64_t newest) {
  EXPECT_EQ(::mkdir(state_dir.c_str(), 0700), 0);
  EXPECT_EQ(::mkdir((state_dir + "/backup").c_str(), 0700), 0);
  auto catalog = Catalog::Open(state_dir + "/backup/catalog.db");
  EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
  std::string id;
  for (int64_t t : {newest - 86400, newest}) {
    Snapshot s;
    s.label = "scheduled";
    s.time = t;
    s.device.path = "/dev/vdb";
    s.device.kind = "file";
    s.device.real_path = "/dev/vdb";
    s.device.size = 64 << 20;
    s.size = 64 << 20;
    s.chunk_size = 1 << 20;
    s.stats.seconds = 7;
    s.stats.stored_bytes = 12345;
    s.consistency = "direct";
    auto added = (*catalog)->AddSnapshot(s);
    EXPECT_TRUE(added.ok());
    id = added->id;
  }
  auto locations = replication::ChunkLocations::Open(state_dir + "/backup/locations.db");
  EXPECT_TRUE(locations.ok());
  ChunkId a, b;
  a.bytes.fill(std::byte{1});
  b.bytes.fill(std::byte{2});
  std::vector<replication::ChunkLocation> rows = {{a, "beta", {}}, {a, "gamma", {}}, {b, "beta", {}}};
  EXPECT_TRUE((*locations)->Add(rows).ok());
  return id;
}

// alpha lists /dev/vdb and /dev/vdc with a 1 h max age; gamma's default 7 d.
std::string Policies() {
  return "dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\n"
         "objectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\n"
         "sparetimeReplicas: 2\n\n"
         "dn: cn=host-alpha,ou=policies,ou=sparetime,dc=example,dc=org\n"
         "objectClass: sparetimePolicy\ncn: host-alpha\nsparetimeAppliesToHost: alpha\n"
         "sparetimeDevice: /dev/vdb\nsparetimeDevice: /dev/vdc\nsparetimeMaxAge: 1h\n";
}

json Fleet(const std::string& config, CommandResult* r) {
  *r = RunCommand(std::string(SPARETIME_CLI) + " --config " + ShellQuote(config) + " fleet --json");
  return json::parse(r->out, nullptr, false);
}

const json* Host(const json& fleet, const std::string& name) {
  for (const json& h : fleet["hosts"]) {
    if (h["name"] == name) return &h;
  }
  return nullptr;
}

// What alpha publishes, checked in the fleet's JSON.
void ExpectAlpha(const json& alpha, const std::string& snapshot, int64_t newest) {
  EXPECT_EQ(alpha["published"], true);
  EXPECT_EQ(alpha["overdue"], true);
  EXPECT_EQ(alpha["max_age_seconds"], 3600);
  EXPECT_EQ(alpha["capacity"], 1u << 30);
  EXPECT_EQ(alpha["policy_devices"], json::array({"/dev/vdb", "/dev/vdc"}));
  ASSERT_EQ(alpha["devices"].size(), 2u) << alpha;
  const json& vdb = alpha["devices"][0];
  EXPECT_EQ(vdb["device"], "/dev/vdb");
  EXPECT_EQ(vdb["last_success"], newest);
  EXPECT_EQ(vdb["snapshot"], snapshot);
  EXPECT_EQ(vdb["size"], 64u << 20);
  EXPECT_EQ(vdb["seconds"], 7);
  EXPECT_EQ(vdb["stored"], 12345);
  EXPECT_EQ(vdb["forced"], false);
  EXPECT_EQ(vdb["overdue"], true);  // 2 h > 1 h
  EXPECT_GE(vdb["age_seconds"].get<int64_t>(), 7200);
  const json& vdc = alpha["devices"][1];
  EXPECT_EQ(vdc["device"], "/dev/vdc");
  EXPECT_EQ(vdc["last_success"], 0);
  EXPECT_EQ(vdc["age_seconds"], -1);
  EXPECT_EQ(vdc["overdue"], true);
  EXPECT_EQ(alpha["replicas"], 2);
  EXPECT_EQ(alpha["chunks_replicated"], 1);
  EXPECT_EQ(alpha["chunks_under_replicated"], 1);
  EXPECT_EQ(alpha["last_verify"], 0);
  EXPECT_EQ(alpha["last_error"], "");
}

TEST(FleetTest, AnAgentPublishesItsStateAndFleetListsEveryHostFromTheLdifFile) {
  TempDir dir;
  const int64_t newest = Now() - 7200;
  const std::string snapshot = SeedState(dir / "state-alpha", newest);
  // gamma: a good state written by "another agent"; beta: a broken one.
  directory::DeviceBackupState gamma_sda = Dev("/dev/sda", Now() - 600, 4096, "00ff00ff");
  const std::string ldif = dir / "directory.ldif";
  std::ofstream(ldif) << DomainLdif({"alpha", "beta", "gamma"}, [&](const std::string& host) {
    std::string lines = "sparetimeAddress: 127.0.0.1\nsparetimePort: 7401\nsparetimePublicKey: " +
                        std::string(host == "beta" ? "Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0="
                                                   : "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=") +
                        "\nsparetimeFree: 5000\nsparetimeCapacity: 10000\n";
    if (host == "alpha") return std::string();  // registers itself
    if (host == "beta") {
      return lines + "sparetimeBackupState: " + kBroken + "\nsparetimeBackupState: " +
             directory::EncodeDeviceState(Dev("/dev/vdy")) + "\n";
    }
    return lines + "sparetimeBackupState: " + directory::EncodeDeviceState(gamma_sda) + "\n" +
           "sparetimeBackupHealth: " +
           directory::EncodeBackupHealth(Health(2, 9, 0, Now() - 3600)) + "\n";
  }) << Policies();
  // The textfile directory is missing at first.
  const std::string metrics = dir / "node-exporter";
  const std::string config = WriteAgentConfig(dir.path(), "alpha", ldif, "127.0.0.1:0",
                                              "advertise_address = 127.0.0.1\n");
  std::ofstream(config, std::ios::app) << "\n[metrics]\ntextfile_dir = " << metrics << "\n";
  // gamma's and beta's keys collide with nothing alpha has: alpha's entry has no key yet.
  AgentProcess alpha(config, dir / "alpha.log");
  ASSERT_TRUE(WaitUntil(
      [&] {
        Result<std::string> text = ReadFileToString(ldif);
        return text.ok() && text->find("sparetimeBackupHealth: {\"healthy\":1,") != std::string::npos;
      },
      seconds(20)))
      << alpha.Log();
  // The bad-input row: the missing directory is one warning, and nothing stops.
  const std::string missing_warning = "metrics: the metrics directory " + metrics + " does not exist";
  EXPECT_NE(alpha.Log().find(missing_warning), std::string::npos) << alpha.Log();
  ASSERT_EQ(::mkdir(metrics.c_str(), 0755), 0);
  ASSERT_TRUE(WaitUntil([&] { return ReadFileToString(metrics + "/sparetime.prom").ok(); },
                        seconds(10)))
      << alpha.Log();
  // The recovery line follows the write (the file may be seen first).
  EXPECT_TRUE(WaitUntil(
      [&] { return alpha.Log().find("metrics: written to " + metrics + " again") != std::string::npos; },
      seconds(5)))
      << alpha.Log();
  std::string log = alpha.Log();
  EXPECT_EQ(log.find(missing_warning), log.rfind(missing_warning)) << "said once: " << log;
  std::string prom = *ReadFileToString(metrics + "/sparetime.prom");
  EXPECT_NE(prom.find("sparetime_last_success_timestamp_seconds{host=\"alpha\",device=\"/dev/vdb\"} " +
                      std::to_string(newest) + "\n"),
            std::string::npos) << prom;
  EXPECT_NE(prom.find("sparetime_overdue{host=\"alpha\",device=\"/dev/vdc\"} 1\n"), std::string::npos);
  EXPECT_NE(prom.find("sparetime_chunks_under_replicated{host=\"alpha\"} 1\n"), std::string::npos);

  CommandResult r;
  json fleet = Fleet(config, &r);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fleet.is_object()) << r.out;
  ASSERT_EQ(fleet["hosts"].size(), 3u) << fleet;
  EXPECT_EQ(fleet["overdue_hosts"], 2);  // alpha (1 h) and beta (/dev/vdy never)
  ASSERT_NE(Host(fleet, "alpha"), nullptr);
  ExpectAlpha(*Host(fleet, "alpha"), snapshot, newest);
  const json& beta = *Host(fleet, "beta");
  ASSERT_EQ(beta["devices"].size(), 1u);  // the broken value skipped, the good one kept
  EXPECT_EQ(beta["devices"][0]["device"], "/dev/vdy");
  EXPECT_EQ(beta["overdue"], true);
  EXPECT_FALSE(beta.contains("replicas"));
  const json& gamma = *Host(fleet, "gamma");
  EXPECT_EQ(gamma["overdue"], false);  // 10 min < the default 7 d
  EXPECT_EQ(gamma["max_age_seconds"], 7 * 86400);
  EXPECT_EQ(gamma["free"], 5000);
  EXPECT_EQ(gamma["chunks_replicated"], 9);
  ASSERT_EQ(fleet["warnings"].size(), 1u) << fleet;
  EXPECT_EQ(fleet["warnings"][0].get<std::string>().rfind(
                AgentDn("beta") + ": value skipped: sparetimeBackupState: ", 0),
            0u)
      << fleet["warnings"][0];

  // The text form: every host, the overdue ones marked, the warning on stderr.
  r = RunCommand(std::string(SPARETIME_CLI) + " --config " + ShellQuote(config) + " fleet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("3 host(s), 2 overdue\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("alpha OVERDUE: seen "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  /dev/vdb: last good 2h ago (snapshot " + snapshot.substr(0, 8) +
                       ", 64.0 MiB, 7 s), OVERDUE (max age 60m)\n"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  /dev/vdc: never backed up, OVERDUE (max age 60m)\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  replicas: 1 chunks on 2+ peers, 1 under-replicated; last verify never "
                       "(UNDER-REPLICATED: sparetime repair)\n"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gamma: seen "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("sparetime: warning: left out: " + AgentDn("beta") + ": value skipped: "),
            std::string::npos) << r.err;

  // status shows the same report.
  r = RunCommand(std::string(SPARETIME_CLI) + " --config " + ShellQuote(config) + " status");
  EXPECT_NE(r.out.find("backup:     /dev/vdc: never, OVERDUE\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("replicas:   1 chunks on 2+ peers, 1 under-replicated; last verify never\n"),
            std::string::npos) << r.out;
}

// The same against a real slapd: alpha binds as itself and may write its
// state under the project's ACLs; a broken agent (beta, as itself) writes
// garbage into its own entry, which fleet skips with a warning; beta may not
// write alpha's state.
TEST(FleetTest, PublishedInSlapdUnderTheAclsAndListedFromIt) {
  if (!SlapdServer::Available()) GTEST_SKIP() << "slapd/ldap-utils are not installed";
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  SlapdServer server(SPARETIME_SOURCE_DIR "/conf/ldap", SlapdServer::ConfigForm::kCnConfig);
  ASSERT_TRUE(server.Init());
  ASSERT_TRUE(server.LoadExampleDit());
  // The example keys are placeholders: alpha publishes its own.
  CommandResult r = server.AsRoot("ldapmodify", "", "dn: " + AgentDn("alpha") +
                                                        "\nchangetype: modify\ndelete: sparetimePublicKey\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = server.AsRoot("ldapadd", "", "dn: cn=fleet,ou=policies," + std::string(kBase) +
                                       "\nobjectClass: sparetimePolicy\ncn: fleet\n"
                                       "sparetimeAppliesToHost: alpha\nsparetimeDevice: /dev/vdb\n"
                                       "sparetimeDevice: /dev/vdc\nsparetimeMaxAge: 1h\n"
                                       "sparetimeReplicas: 2\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  TempDir dir;
  const int64_t newest = Now() - 7200;
  const std::string snapshot = SeedState(dir / "state-alpha", newest);
  const std::string password = server.WriteFile("alpha.secret", "alpha-secret\n", 0600);
  const std::string config = dir / "alpha.conf";
  std::ofstream(config) << "[agent]\nname = alpha\nlisten = 127.0.0.1:0\nadvertise_address = "
                           "127.0.0.1\nstate_dir = " << (dir / "state-alpha")
                        << "\nheartbeat = 1s\n\n[storage]\ncapacity = 1G\n\n[directory]\nuri = "
                        << server.uri() << "\nbase = " << kBase << "\nbind_dn = " << AgentDn("alpha")
                        << "\npassword_file = " << password << "\n\n[metrics]\ntextfile_dir =\n";
  AgentProcess alpha(config, dir / "alpha.log");
  const LdapBind as_alpha{AgentDn("alpha"), "alpha-secret"};
  ASSERT_TRUE(WaitUntil(
      [&] {
        CommandResult s = server.Tool("ldapsearch", as_alpha,
                                      "-LLL -o ldif-wrap=no -b " + ShellQuote(AgentDn("alpha")) +
                                          " sparetimeBackupHealth");
        return s.out.find("sparetimeBackupHealth: {\"healthy\":1,") != std::string::npos;
      },
      seconds(20)))
      << alpha.Log() << server.Log();
  // Any LDAP tool sees the same as the fleet view.
  r = server.Tool("ldapsearch", as_alpha,
                  "-LLL -o ldif-wrap=no -b " + ShellQuote(AgentDn("alpha")) + " sparetimeBackupState");
  EXPECT_NE(r.out.find("sparetimeBackupState: " +
                       directory::EncodeDeviceState(Dev("/dev/vdb", newest, 64 << 20, snapshot, 7, 12345))),
            std::string::npos) << r.out;

  // beta, as itself, writes garbage into its own entry (allowed by the ACL)...
  const LdapBind as_beta{AgentDn("beta"), "beta-secret"};
  r = server.Tool("ldapmodify", as_beta, "",
                  "dn: " + AgentDn("beta") + "\nchangetype: modify\nreplace: sparetimeBackupState\n"
                  "sparetimeBackupState: " + kBroken + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // ...but may not touch alpha's.
  r = server.Tool("ldapmodify", as_beta, "",
                  "dn: " + AgentDn("alpha") + "\nchangetype: modify\nreplace: sparetimeBackupState\n"
                  "sparetimeBackupState: {}\n");
  EXPECT_EQ(r.exit_code, 50) << r.out << r.err;  // insufficientAccessRights

  json fleet = Fleet(config, &r);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fleet.is_object()) << r.out;
  ASSERT_EQ(fleet["hosts"].size(), 2u) << fleet;
  ASSERT_NE(Host(fleet, "alpha"), nullptr);
  ExpectAlpha(*Host(fleet, "alpha"), snapshot, newest);
  const json& beta = *Host(fleet, "beta");
  EXPECT_EQ(beta["published"], false);
  EXPECT_EQ(beta["devices"].size(), 0u);
  ASSERT_EQ(fleet["warnings"].size(), 1u) << fleet;
  EXPECT_NE(fleet["warnings"][0].get<std::string>().find("\"time\" that is not an integer"),
            std::string::npos) << fleet["warnings"][0];
}

}  // namespace
}  // namespace sparetime::testing
