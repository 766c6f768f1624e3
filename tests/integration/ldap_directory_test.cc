// The LDAP directory backend (directory/src/ldap_*.cc) against a real slapd
// with the project's schema, ACLs and example DIT: binding (password file
// rules, SASL EXTERNAL), registration and re-registration, trust-on-first-use
// keys, the ACLs seen through the client, discovery with malformed entries,
// paging, and escaping of host names in DNs and filters. Change notification,
// restarts and TLS are in ldap_directory_watch_test.cc.
#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <string>

#include "sparetime/directory/directory.h"
#include "sparetime/directory/records.h"
#include "testutil/slapd.h"

namespace sparetime::testing {
namespace {

using directory::AgentRegistration;
using directory::DirectoryConfig;
using directory::DirectoryContents;
using directory::Entry;
using directory::PublicKey;
using directory::TimePoint;

constexpr char kConfDir[] = SPARETIME_SOURCE_DIR "/conf/ldap";
constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";
constexpr char kAgents[] = "ou=agents,ou=sparetime,dc=example,dc=org";
constexpr char kAlphaDn[] = "cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org";
constexpr char kBetaDn[] = "cn=beta,ou=agents,ou=sparetime,dc=example,dc=org";
constexpr char kAlphaKey[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";  // example-dit.ldif
constexpr char kOtherKey[] = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";

PublicKey Key(const std::string& base64) {
  PublicKey key{};
  size_t len = 0;
  EXPECT_EQ(sodium_base642bin(key.data(), key.size(), base64.data(), base64.size(), nullptr, &len,
                              nullptr, sodium_base64_VARIANT_ORIGINAL),
            0);
  EXPECT_EQ(len, key.size());
  return key;
}

// 2026-11-26 hh:mm:00 UTC, the day of the example DIT's heartbeats.
TimePoint At(int hour, int minute) {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 10;
  tm.tm_mday = 26;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

const Entry* FindAgent(const DirectoryContents& contents, const std::string& cn) {
  for (const Entry& e : contents.agents) {
    if (e.Values("cn") == std::vector<std::string>{cn}) return &e;
  }
  return nullptr;
}

std::string Value(const Entry* e, const std::string& attr) {
  if (e == nullptr || e->Values(attr).empty()) return "<none>";
  return e->Values(attr).front();
}

int CountDns(const std::string& ldif) {
  int n = 0;
  for (size_t at = 0; (at = ldif.find("dn: ", at)) != std::string::npos; at += 4) {
    if (at == 0 || ldif[at - 1] == '\n') ++n;
  }
  return n;
}

class LdapDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SlapdServer::Available()) GTEST_SKIP() << "slapd/ldap-utils are not installed";
    server_ = std::make_unique<SlapdServer>(kConfDir, SlapdServer::ConfigForm::kCnConfig);
    ASSERT_TRUE(server_->Init());
    ASSERT_TRUE(server_->LoadExampleDit());
    alpha_password_ = server_->WriteFile("alpha.secret", "alpha-secret\n", 0600);
    beta_password_ = server_->WriteFile("beta.secret", "beta-secret", 0600);
    admin_password_ = server_->WriteFile("root.secret", SlapdServer::kRootPassword, 0600);
  }

  DirectoryConfig Config(const std::string& bind_dn, const std::string& password_file) const {
    DirectoryConfig c;
    c.uri = server_->uri();
    c.base_dn = kBase;
    c.bind_dn = bind_dn;
    c.password_file = password_file;
    c.network_timeout = std::chrono::seconds(2);
    c.operation_timeout = std::chrono::seconds(5);
    return c;
  }
  std::unique_ptr<directory::Directory> Open(const DirectoryConfig& config) const {
    auto opened = directory::OpenDirectory(config);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }
  std::unique_ptr<directory::Directory> Alpha() const {
    return Open(Config(kAlphaDn, alpha_password_));
  }
  std::unique_ptr<directory::Directory> Root() const {
    return Open(Config(SlapdServer::kRootDn, admin_password_));
  }
  DirectoryContents FetchAsBeta() const {
    auto fetched = Open(Config(kBetaDn, beta_password_))->Fetch();
    EXPECT_TRUE(fetched.ok()) << fetched.status().ToString();
    return fetched.ok() ? *fetched : DirectoryContents{};
  }
  void AddAsRoot(const std::string& ldif) const {
    CommandResult r = server_->AsRoot("ldapadd", "", ldif);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  }

  std::unique_ptr<SlapdServer> server_;
  std::string alpha_password_, beta_password_, admin_password_;
};

AgentRegistration AlphaRegistration() {
  AgentRegistration self;
  self.name = "alpha";
  self.address = "192.0.2.10";
  self.port = 7411;
  self.public_key = Key(kAlphaKey);
  self.capacity = 600000000000;
  self.free = 550000000000;
  self.version = "0.2.0";
  self.devices_held = {"beta:/dev/sdb", "gamma:/dev/sdc"};
  return self;
}

TEST_F(LdapDirectoryTest, BindsWithAPrivatePasswordFileAndRefusesAnOpenOne) {
  auto alpha = Alpha();
  ASSERT_NE(alpha, nullptr);
  auto fetched = alpha->Fetch();  // "alpha-secret\n": the newline is not part of it
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(fetched->agents.size(), 2u);
  EXPECT_EQ(fetched->policies.size(), 3u);
  EXPECT_EQ(fetched->groups.size(), 1u);
  for (const Entry& e : fetched->agents) EXPECT_TRUE(e.Values("userPassword").empty()) << e.dn;
  EXPECT_EQ(alpha->Describe(), server_->uri() + " (" + kBase + ")");

  const std::string open_file = server_->WriteFile("open.secret", "alpha-secret", 0644);
  auto refused = directory::OpenDirectory(Config(kAlphaDn, open_file));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find(open_file), std::string::npos);
  EXPECT_NE(refused.error().message().find("chmod 600"), std::string::npos)
      << refused.error().message();

  const std::string empty = server_->WriteFile("empty.secret", "\n", 0600);
  EXPECT_FALSE(directory::OpenDirectory(Config(kAlphaDn, empty)).ok());
  EXPECT_FALSE(directory::OpenDirectory(Config(kAlphaDn, "")).ok());

  const std::string wrong = server_->WriteFile("wrong.secret", "beta-secret", 0600);
  auto bad_bind = Open(Config(kAlphaDn, wrong))->Fetch();
  ASSERT_FALSE(bad_bind.ok());
  EXPECT_EQ(bad_bind.error().code(), ErrorCode::kAuthFailed);
  EXPECT_NE(bad_bind.error().message().find(wrong), std::string::npos)
      << bad_bind.error().message();
  EXPECT_NE(bad_bind.error().message().find(server_->uri()), std::string::npos);
}

TEST_F(LdapDirectoryTest, ConfigurationErrorsAreCaughtAtOpen) {
  DirectoryConfig remote = Config(kAlphaDn, alpha_password_);
  remote.uri = "ldap://ldap.example.org";
  auto no_ca = directory::OpenDirectory(remote);
  ASSERT_FALSE(no_ca.ok());
  EXPECT_NE(no_ca.error().message().find("ca_file"), std::string::npos)
      << no_ca.error().message();
  remote.uri = "ldaps://192.0.2.1:636";
  EXPECT_FALSE(directory::OpenDirectory(remote).ok());
  for (const char* loopback : {"ldap://localhost:1", "ldap://127.0.0.2:1", "ldap://[::1]:1"}) {
    remote.uri = loopback;
    EXPECT_TRUE(directory::OpenDirectory(remote).ok()) << loopback;
  }
  remote.ca_file = server_->dir() + "/no-such-ca.pem";
  EXPECT_FALSE(directory::OpenDirectory(remote).ok());

  DirectoryConfig both = Config(kAlphaDn, alpha_password_);
  both.sasl_external = true;
  EXPECT_FALSE(directory::OpenDirectory(both).ok());
  DirectoryConfig no_base = Config(kAlphaDn, alpha_password_);
  no_base.base_dn = "";
  EXPECT_FALSE(directory::OpenDirectory(no_base).ok());
  DirectoryConfig no_host = Config(kAlphaDn, alpha_password_);
  no_host.uri = "ldap:///";
  EXPECT_FALSE(directory::OpenDirectory(no_host).ok());
}

TEST_F(LdapDirectoryTest, RegistersAndReRegisters) {
  auto alpha = Alpha();
  AgentRegistration self = AlphaRegistration();
  ASSERT_TRUE(alpha->Register(self, At(4, 30)).ok());
  DirectoryContents first = FetchAsBeta();
  const Entry* entry = FindAgent(first, "alpha");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(Value(entry, "sparetimeAddress"), "192.0.2.10");
  EXPECT_EQ(Value(entry, "sparetimePort"), "7411");
  EXPECT_EQ(Value(entry, "sparetimeCapacity"), "600000000000");
  EXPECT_EQ(Value(entry, "sparetimeFree"), "550000000000");
  EXPECT_EQ(Value(entry, "sparetimeVersion"), "0.2.0");
  EXPECT_EQ(Value(entry, "sparetimeLastSeen"), "20261126043000Z");
  EXPECT_EQ(entry->Values("sparetimeDeviceHeld"),
            (std::vector<std::string>{"beta:/dev/sdb", "gamma:/dev/sdc"}));
  EXPECT_EQ(Value(entry, "sparetimePublicKey"), kAlphaKey);
  EXPECT_EQ(Value(entry, "sparetimeSite"), "building-a");  // not the agent's to change

  // The heartbeat: last-seen moves, values are replaced, an empty list deletes.
  self.free = 540000000000;
  self.devices_held.clear();
  ASSERT_TRUE(alpha->Register(self, At(4, 31)).ok());
  DirectoryContents second = FetchAsBeta();
  entry = FindAgent(second, "alpha");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(Value(entry, "sparetimeLastSeen"), "20261126043100Z");
  EXPECT_EQ(Value(entry, "sparetimeFree"), "540000000000");
  EXPECT_EQ(entry->Values("sparetimeFree").size(), 1u);
  EXPECT_TRUE(entry->Values("sparetimeDeviceHeld").empty());

  // Through the model side: beta sees alpha live with what it registered.
  directory::DirectoryView view = directory::Parse(second);
  auto peers = directory::LivePeers(view, "beta", At(4, 35), std::chrono::minutes(15));
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].name, "alpha");
  EXPECT_EQ(peers[0].address, "192.0.2.10");
  EXPECT_EQ(peers[0].port, 7411);
  EXPECT_EQ(peers[0].public_key, Key(kAlphaKey));
  EXPECT_EQ(peers[0].free, 540000000000u);
}

TEST_F(LdapDirectoryTest, KeyIsTrustedOnFirstUseAndNeverReplaced) {
  CommandResult r = server_->AsRoot("ldapmodify", "",
                                    "dn: " + std::string(kAlphaDn) +
                                        "\nchangetype: modify\ndelete: sparetimePublicKey\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto alpha = Alpha();
  AgentRegistration self = AlphaRegistration();
  self.public_key = Key(kOtherKey);
  ASSERT_TRUE(alpha->Register(self, At(5, 0)).ok());
  EXPECT_EQ(Value(FindAgent(FetchAsBeta(), "alpha"), "sparetimePublicKey"), kOtherKey);
  // Same key again: fine. Another key: refused, naming both.
  ASSERT_TRUE(alpha->Register(self, At(5, 1)).ok());
  self.public_key = Key(kAlphaKey);
  Status refused = alpha->Register(self, At(5, 2));
  ASSERT_EQ(refused.code(), ErrorCode::kAuthFailed) << refused.ToString();
  EXPECT_NE(refused.message().find(kAlphaKey), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find(kOtherKey), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("admin"), std::string::npos) << refused.message();
  const DirectoryContents after = FetchAsBeta();
  const Entry* entry = FindAgent(after, "alpha");
  EXPECT_EQ(Value(entry, "sparetimePublicKey"), kOtherKey);
  EXPECT_EQ(Value(entry, "sparetimeLastSeen"), "20261126050100Z");  // nothing written
}

TEST_F(LdapDirectoryTest, AgentCannotWriteAnotherAgentOrEnrolItself) {
  auto alpha = Alpha();
  AgentRegistration as_beta = AlphaRegistration();
  as_beta.name = "beta";
  as_beta.public_key = Key("Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0=");
  Status denied = alpha->Register(as_beta, At(6, 0));
  EXPECT_EQ(denied.code(), ErrorCode::kPermissionDenied) << denied.ToString();
  EXPECT_NE(denied.message().find(kBetaDn), std::string::npos) << denied.message();
  EXPECT_EQ(Value(FindAgent(FetchAsBeta(), "beta"), "sparetimeAddress"), "192.0.2.17");

  AgentRegistration gamma = AlphaRegistration();
  gamma.name = "gamma";
  Status not_enrolled = alpha->Register(gamma, At(6, 0));
  EXPECT_EQ(not_enrolled.code(), ErrorCode::kPermissionDenied) << not_enrolled.ToString();
  EXPECT_NE(not_enrolled.message().find("enrol"), std::string::npos) << not_enrolled.message();

  // An admin identity may create the entry, site included.
  gamma.site = "building-c";
  ASSERT_TRUE(Root()->Register(gamma, At(6, 0)).ok());
  const DirectoryContents after = FetchAsBeta();
  const Entry* entry = FindAgent(after, "gamma");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->dn, "cn=gamma," + std::string(kAgents));
  EXPECT_EQ(Value(entry, "sparetimeSite"), "building-c");
  EXPECT_EQ(Value(entry, "sparetimePublicKey"), kAlphaKey);
  EXPECT_EQ(Value(entry, "sparetimeLastSeen"), "20261126060000Z");
}

TEST_F(LdapDirectoryTest, DiscoversAgentsAndSkipsMalformedOnesAndMissingGroups) {
  auto agent = [](const std::string& cn, const std::string& extra) {
    return "dn: cn=" + cn + "," + kAgents + "\nobjectClass: sparetimeAgent\ncn: " + cn + "\n" +
           extra + "\n";
  };
  AddAsRoot(agent("gamma", "sparetimeAddress: 192.0.2.30\nsparetimePort: 7401\n"
                           "sparetimePublicKey: " + std::string(kOtherKey) +
                           "\nsparetimeLastSeen: 20261126041800Z\n") +
            agent("delta", "sparetimeAddress: 192.0.2.40\nsparetimePort: 7401\n"
                           "sparetimePublicKey: c2hvcnQ=\nsparetimeLastSeen: 20261126041800Z\n") +
            agent("epsilon", "sparetimePort: 7401\nsparetimePublicKey: " +
                                 std::string(kOtherKey) + "\nsparetimeLastSeen: 20261126041800Z\n") +
            "dn: cn=ghost-group,ou=policies," + kBase +
            "\nobjectClass: sparetimePolicy\ncn: ghost-group\n"
            "sparetimeAppliesToGroup: cn=ghost,ou=groups," + kBase + "\nsparetimeReplicas: 4\n");
  for (int page_size : {500, 1}) {
    DirectoryConfig config = Config(kBetaDn, beta_password_);
    config.page_size = page_size;
    auto fetched = Open(config)->Fetch();
    ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
    EXPECT_EQ(fetched->agents.size(), 5u) << "page size " << page_size;
    EXPECT_EQ(fetched->policies.size(), 4u);
    ASSERT_EQ(fetched->groups.size(), 1u);  // the ghost group is left out
    EXPECT_EQ(fetched->groups[0].Values("member").size(), 2u);

    directory::DirectoryView view = directory::Parse(*fetched);
    EXPECT_EQ(view.agents.size(), 3u);
    EXPECT_GE(view.warnings.size(), 2u);
    auto peers = directory::LivePeers(view, "beta", At(4, 20), std::chrono::minutes(15));
    ASSERT_EQ(peers.size(), 1u);  // alpha is stale (04:00), delta/epsilon malformed
    EXPECT_EQ(peers[0].name, "gamma");
  }
}

TEST_F(LdapDirectoryTest, HostNamesAreEscapedInDnsAndFilters) {
  auto root = Root();
  const std::vector<std::string> names = {"alpha)(cn=*", "*", "we,ird+na;me<>\"\\=x", " #lead"};
  for (const std::string& name : names) {
    AgentRegistration odd = AlphaRegistration();
    odd.name = name;
    ASSERT_TRUE(root->Register(odd, At(7, 0)).ok()) << name;
  }
  // Each name made exactly one entry whose cn round-trips; nothing else moved.
  DirectoryContents contents = FetchAsBeta();
  EXPECT_EQ(contents.agents.size(), 2u + names.size());
  for (const std::string& name : names) EXPECT_NE(FindAgent(contents, name), nullptr) << name;
  EXPECT_EQ(Value(FindAgent(contents, "beta"), "sparetimeLastSeen"), "20261126041500Z");

  // Escaped filter values match exactly the one entry; raw ones would not.
  EXPECT_EQ(directory::EscapeFilterValue("alpha)(cn=*"), "alpha\\29\\28cn=\\2a");
  EXPECT_EQ(directory::EscapeFilterValue(std::string("a\\b\0c", 5)), "a\\5cb\\00c");
  for (const std::string& name : names) {
    CommandResult r = server_->AsRoot(
        "ldapsearch", "-LLL -o ldif-wrap=no -b " + ShellQuote(kAgents) + " " +
                          ShellQuote("(&(objectClass=sparetimeAgent)(cn=" +
                                     directory::EscapeFilterValue(name) + "))") + " 1.1");
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_EQ(CountDns(r.out), 1) << name << ": " << r.out;
  }
  EXPECT_EQ(directory::EscapeDnValue(" #a,b "), "\\ #a\\,b\\ ");
}

TEST_F(LdapDirectoryTest, SaslExternalOverLdapi) {
  // The harness maps this process's peer credentials to
  // gidNumber=G+uidNumber=U,cn=peercred,cn=external,cn=auth: an authenticated
  // identity that the ACLs let read ("users") but not write agent entries.
  DirectoryConfig config;
  config.uri = server_->ldapi_uri();
  config.base_dn = kBase;
  config.sasl_external = true;
  auto external = Open(config);
  auto fetched = external->Fetch();
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(fetched->agents.size(), 2u);
  EXPECT_EQ(fetched->policies.size(), 3u);
  Status denied = external->Register(AlphaRegistration(), At(8, 0));
  EXPECT_EQ(denied.code(), ErrorCode::kPermissionDenied) << denied.ToString();

  // Anonymous sees nothing: the agents container is not even disclosed.
  DirectoryConfig anonymous = Config("", "");
  auto hidden = Open(anonymous)->Fetch();
  ASSERT_FALSE(hidden.ok());
  EXPECT_EQ(hidden.error().code(), ErrorCode::kNotFound) << hidden.error().ToString();
}

}  // namespace
}  // namespace sparetime::testing
