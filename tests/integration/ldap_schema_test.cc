// The sparetime LDAP schema, example DIT and ACLs (conf/ldap/) against a real
// slapd, loaded both ways an admin would: cn=config (sparetime.ldif, acl.ldif
// over ldapi:// with SASL EXTERNAL) and slapd.conf (sparetime.schema,
// acl.conf). Every test runs under both forms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "testutil/slapd.h"

namespace sparetime::testing {
namespace {

using Form = SlapdServer::ConfigForm;

constexpr char kConfDir[] = SPARETIME_SOURCE_DIR "/conf/ldap";
constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";
constexpr char kAlphaDn[] = "cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org";
constexpr char kBetaDn[] = "cn=beta,ou=agents,ou=sparetime,dc=example,dc=org";
constexpr char kDefaultPolicyDn[] = "cn=default,ou=policies,ou=sparetime,dc=example,dc=org";
constexpr int kInsufficientAccess = 50;
constexpr int kConstraintViolation = 19;
constexpr int kInvalidSyntax = 21;

// The identities of example-dit.ldif (plain-text passwords given there).
const LdapBind kAlpha{kAlphaDn, "alpha-secret"};
const LdapBind kBeta{kBetaDn, "beta-secret"};
const LdapBind kAdmin{"cn=sparetime-admin,ou=sparetime,dc=example,dc=org", "admin-secret"};
const LdapBind kAnonymous{};

std::string Modify(const std::string& dn, const std::string& attr, const std::string& value) {
  return "dn: " + dn + "\nchangetype: modify\nreplace: " + attr + "\n" + attr + ": " + value + "\n";
}

// The DNs in ldapsearch -LLL output, sorted.
std::vector<std::string> Dns(const std::string& ldif) {
  std::vector<std::string> dns;
  std::istringstream in(ldif);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("dn: ", 0) == 0) dns.push_back(line.substr(4));
  }
  std::sort(dns.begin(), dns.end());
  return dns;
}

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

class LdapSchemaTest : public ::testing::TestWithParam<Form> {
 protected:
  void SetUp() override {
    if (!SlapdServer::Available()) {
      GTEST_SKIP() << "slapd/ldap-utils are not installed (scripts/install-deps installs them)";
    }
    server_ = std::make_unique<SlapdServer>(kConfDir, GetParam());
    ASSERT_TRUE(server_->Init());
    CommandResult r =
        server_->AsRoot("ldapadd", "-f " + ShellQuote(std::string(kConfDir) + "/example-dit.ldif"));
    ASSERT_EQ(r.exit_code, 0) << "loading example-dit.ldif: " << Describe(r);
  }

  // `attrs` is passed to the shell as is: quote '*'.
  CommandResult Search(const LdapBind& bind, const std::string& base, const std::string& filter,
                       const std::string& attrs) {
    return server_->Tool("ldapsearch", bind,
                         "-LLL -o ldif-wrap=no -b " + ShellQuote(base) + " " + ShellQuote(filter) +
                             " " + attrs);
  }
  CommandResult Change(const LdapBind& bind, const std::string& ldif) {
    return server_->Tool("ldapmodify", bind, "", ldif);
  }

  std::unique_ptr<SlapdServer> server_;
};

TEST_P(LdapSchemaTest, ExampleDitLoadsWithAllObjectClasses) {
  CommandResult agents = Search(kAdmin, kBase, "(objectClass=sparetimeAgent)", "dn");
  ASSERT_EQ(agents.exit_code, 0) << Describe(agents);
  EXPECT_EQ(Dns(agents.out), (std::vector<std::string>{kAlphaDn, kBetaDn}));
  CommandResult policies = Search(kAdmin, kBase, "(objectClass=sparetimePolicy)", "dn");
  ASSERT_EQ(policies.exit_code, 0) << Describe(policies);
  EXPECT_EQ(Dns(policies.out).size(), 3u) << policies.out;
  CommandResult defaults = Search(kAdmin, kBase, "(sparetimeDomainDefault=TRUE)", "dn");
  EXPECT_EQ(Dns(defaults.out), std::vector<std::string>{kDefaultPolicyDn});
  CommandResult group = Search(
      kAdmin, kBase, "(sparetimeAppliesToGroup=cn=lab,ou=groups,ou=sparetime,dc=example,dc=org)",
      "dn");
  EXPECT_EQ(Dns(group.out).size(), 1u) << group.out;
}

TEST_P(LdapSchemaTest, MatchingRulesServeTheFiltersAgentsUse) {
  // Liveness: generalizedTimeOrderingMatch on the heartbeat.
  CommandResult live = Search(kBeta, kBase, "(sparetimeLastSeen>=20261126041000Z)", "dn");
  ASSERT_EQ(live.exit_code, 0) << Describe(live);
  EXPECT_EQ(Dns(live.out), std::vector<std::string>{kBetaDn});
  // Placement: integerOrderingMatch on free bytes (values above 2^32).
  CommandResult roomy = Search(kBeta, kBase, "(sparetimeFree>=300000000000)", "dn");
  EXPECT_EQ(Dns(roomy.out), std::vector<std::string>{kAlphaDn});
  // Host names match case-insensitively.
  CommandResult host = Search(kBeta, kBase, "(sparetimeAppliesToHost=ALPHA)", "dn");
  EXPECT_EQ(Dns(host.out).size(), 1u) << host.out;
}

TEST_P(LdapSchemaTest, SchemaRejectsMalformedValues) {
  EXPECT_EQ(Change(kAdmin, Modify(kAlphaDn, "sparetimePort", "http")).exit_code, kInvalidSyntax);
  EXPECT_EQ(Change(kAdmin, Modify(kDefaultPolicyDn, "sparetimeAcOnly", "maybe")).exit_code,
            kInvalidSyntax);
  EXPECT_EQ(Change(kAdmin, Modify(kAlphaDn, "sparetimeLastSeen", "yesterday")).exit_code,
            kInvalidSyntax);
  // Single-valued: a second heartbeat value is refused.
  CommandResult twice = Change(kAdmin, "dn: " + std::string(kAlphaDn) +
                                           "\nchangetype: modify\nadd: sparetimeLastSeen\n"
                                           "sparetimeLastSeen: 20261126050000Z\n");
  EXPECT_EQ(twice.exit_code, kConstraintViolation) << Describe(twice);
}

TEST_P(LdapSchemaTest, AgentUpdatesItsOwnDynamicAttributes) {
  CommandResult r = Change(kAlpha, Modify(kAlphaDn, "sparetimeFree", "123456789012") + "-\n" +
                                       "replace: sparetimeLastSeen\n"
                                       "sparetimeLastSeen: 20261126050000Z\n-\n"
                                       "replace: sparetimeAddress\nsparetimeAddress: 192.0.2.99\n"
                                       "-\nreplace: sparetimeDeviceHeld\n"
                                       "sparetimeDeviceHeld: beta:/dev/sdb\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  CommandResult back =
      Search(kBeta, kAlphaDn, "(objectClass=*)", "sparetimeFree sparetimeLastSeen");
  EXPECT_NE(back.out.find("sparetimeFree: 123456789012"), std::string::npos) << back.out;
  EXPECT_NE(back.out.find("sparetimeLastSeen: 20261126050000Z"), std::string::npos) << back.out;
}

TEST_P(LdapSchemaTest, AgentCannotTouchAnotherAgent) {
  CommandResult r = Change(kAlpha, Modify(kBetaDn, "sparetimeFree", "1"));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = Change(kAlpha, Modify(kBetaDn, "sparetimePublicKey",
                            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = server_->Tool("ldapdelete", kAlpha, ShellQuote(kBetaDn));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
}

TEST_P(LdapSchemaTest, AgentCannotChangeItsKeyOrPasswordOrCreateAgents) {
  CommandResult r = Change(kAlpha, Modify(kAlphaDn, "sparetimePublicKey",
                                          "Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0="));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = Change(kAlpha, Modify(kAlphaDn, "userPassword", "mine"));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = Change(kAlpha, Modify(kAlphaDn, "sparetimeSite", "elsewhere"));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = server_->Tool("ldapadd", kAlpha, "",
                    "dn: cn=gamma,ou=agents,ou=sparetime,dc=example,dc=org\n"
                    "objectClass: sparetimeAgent\ncn: gamma\n");
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
}

// Trust on first use: an agent may add a key to its own entry when it has
// none, but never replace or delete one, and never touch another's.
TEST_P(LdapSchemaTest, AgentAddsItsFirstKeyButNeverChangesIt) {
  const std::string key = "Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0=";
  auto change_key = [&](const LdapBind& bind, const std::string& dn, const std::string& op,
                        const std::string& value) {
    return Change(bind, "dn: " + dn + "\nchangetype: modify\n" + op + ": sparetimePublicKey\n" +
                            (value.empty() ? "" : "sparetimePublicKey: " + value + "\n"));
  };
  CommandResult r = change_key(kAlpha, kAlphaDn, "delete", "");
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  ASSERT_EQ(change_key(kAdmin, kAlphaDn, "delete", "").exit_code, 0);
  ASSERT_EQ(change_key(kAdmin, kBetaDn, "delete", "").exit_code, 0);
  // Without a key: replace still needs the right to delete, which agents lack.
  r = change_key(kAlpha, kAlphaDn, "replace", key);
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = change_key(kAlpha, kBetaDn, "add", key);
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = change_key(kAlpha, kAlphaDn, "add", key);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  CommandResult back = Search(kBeta, kAlphaDn, "(objectClass=*)", "sparetimePublicKey");
  EXPECT_NE(back.out.find("sparetimePublicKey: " + key), std::string::npos) << back.out;
  // Once set: a second value (SINGLE-VALUE), a replace, a delete are refused.
  r = change_key(kAlpha, kAlphaDn, "add", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  EXPECT_EQ(r.exit_code, kConstraintViolation) << Describe(r);
  r = change_key(kAlpha, kAlphaDn, "replace", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = change_key(kAlpha, kAlphaDn, "delete", key);
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
}

TEST_P(LdapSchemaTest, OnlyAdminsWritePoliciesAndKeys) {
  CommandResult r = Change(kAlpha, Modify(kDefaultPolicyDn, "sparetimeReplicas", "9"));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = Change(kAdmin, Modify(kDefaultPolicyDn, "sparetimeReplicas", "4"));
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = Change(kAdmin, Modify(kAlphaDn, "sparetimePublicKey",
                            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="));
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  CommandResult back = Search(kAlpha, kDefaultPolicyDn, "(objectClass=*)", "sparetimeReplicas");
  EXPECT_NE(back.out.find("sparetimeReplicas: 4"), std::string::npos) << back.out;
}

// sparetimeRestoreFor names who may read an agent's backups from the peers
// (docs/peers.md "Who may do what"): only admins write it — not the agent
// itself (it could name an accomplice), not another agent (it could name
// itself).
TEST_P(LdapSchemaTest, OnlyAdminsNameWhoMayReadAnAgentsBackups) {
  CommandResult r = Change(kAlpha, Modify(kAlphaDn, "sparetimeRestoreFor", "gamma"));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = Change(kBeta, Modify(kAlphaDn, "sparetimeRestoreFor", "beta"));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  r = Change(kBeta, Modify(kBetaDn, "sparetimeRestoreFor", "beta"));
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
  CommandResult none = Search(kAdmin, kAlphaDn, "(objectClass=*)", "sparetimeRestoreFor");
  EXPECT_EQ(none.out.find("sparetimeRestoreFor"), std::string::npos) << none.out;
  r = Change(kAdmin, "dn: " + std::string(kAlphaDn) +
                         "\nchangetype: modify\nadd: sparetimeRestoreFor\nsparetimeRestoreFor: "
                         "rescue-1\nsparetimeRestoreFor: admin-box\n");
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  CommandResult back = Search(kBeta, kAlphaDn, "(objectClass=*)", "sparetimeRestoreFor");
  EXPECT_NE(back.out.find("sparetimeRestoreFor: rescue-1"), std::string::npos) << back.out;
  EXPECT_NE(back.out.find("sparetimeRestoreFor: admin-box"), std::string::npos) << back.out;
  // Nor may the agent remove what an admin set.
  r = Change(kAlpha, "dn: " + std::string(kAlphaDn) +
                         "\nchangetype: modify\ndelete: sparetimeRestoreFor\n");
  EXPECT_EQ(r.exit_code, kInsufficientAccess) << Describe(r);
}

TEST_P(LdapSchemaTest, AuthenticatedUsersReadButNotPasswords) {
  CommandResult r = Search(kBeta, kBase, "(objectClass=*)", "'*'");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_GE(Dns(r.out).size(), 10u) << r.out;
  EXPECT_NE(r.out.find("sparetimePublicKey: 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("userPassword"), std::string::npos) << r.out;
}

TEST_P(LdapSchemaTest, AnonymousSeesNothing) {
  CommandResult r = Search(kAnonymous, SlapdServer::kSuffix, "(objectClass=*)", "'*'");
  EXPECT_TRUE(Dns(r.out).empty()) << Describe(r);
  r = Search(kAnonymous, kBase, "(objectClass=sparetimeAgent)", "'*'");
  EXPECT_TRUE(Dns(r.out).empty()) << Describe(r);
  r = Change(kAnonymous, Modify(kAlphaDn, "sparetimeFree", "1"));
  EXPECT_NE(r.exit_code, 0) << Describe(r);
}

TEST_P(LdapSchemaTest, DataAndAclsSurviveARestart) {
  const int port = server_->port();
  server_->Stop();
  EXPECT_NE(Search(kBeta, kBase, "(objectClass=*)", "dn").exit_code, 0);
  ASSERT_TRUE(server_->Start());
  EXPECT_EQ(server_->port(), port);
  CommandResult r = Search(kBeta, kBase, "(objectClass=sparetimeAgent)", "dn");
  EXPECT_EQ(Dns(r.out).size(), 2u) << Describe(r);
  EXPECT_EQ(Change(kAlpha, Modify(kBetaDn, "sparetimeFree", "1")).exit_code, kInsufficientAccess);
}

INSTANTIATE_TEST_SUITE_P(BothForms, LdapSchemaTest,
                         ::testing::Values(Form::kCnConfig, Form::kSlapdConf),
                         [](const ::testing::TestParamInfo<Form>& info) {
                           return info.param == Form::kCnConfig ? "CnConfig" : "SlapdConf";
                         });

// `line` without the "{N}" ordering prefix of the value (but with "{N}" length
// bounds) and with whitespace runs collapsed.
// (By hand: std::regex trips a GCC 12 -Wmaybe-uninitialized under ASan.)
std::string NormaliseSchemaLine(const std::string& line) {
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '{' && out.size() >= 2 && out.compare(out.size() - 2, 2, ": ") == 0) {
      size_t j = i + 1;
      while (j < line.size() && std::isdigit(static_cast<unsigned char>(line[j]))) ++j;
      if (j > i + 1 && j < line.size() && line[j] == '}') {
        i = j;
        continue;
      }
    }
    const bool space = std::isspace(static_cast<unsigned char>(line[i]));
    if (space && !out.empty() && out.back() == ' ') continue;
    out += space ? ' ' : line[i];
  }
  return out;
}

// The schema as slapd holds it (cn=config), normalised so two servers can be
// compared.
std::vector<std::string> LoadedSchema(const SlapdServer& server) {
  CommandResult r = server.AsExternal(
      "ldapsearch", "-LLL -o ldif-wrap=no -b cn=schema,cn=config '(cn=*sparetime)' "
                    "olcAttributeTypes olcObjectClasses");
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<std::string> defs;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("olc", 0) != 0) continue;
    defs.push_back(NormaliseSchemaLine(line));
  }
  std::sort(defs.begin(), defs.end());
  return defs;
}

TEST(LdapSchemaFormsTest, SchemaFileAndLdifDefineTheSameSchema) {
  if (!SlapdServer::Available()) GTEST_SKIP() << "slapd/ldap-utils are not installed";
  SlapdServer from_ldif(kConfDir, Form::kCnConfig);
  SlapdServer from_schema(kConfDir, Form::kSlapdConf);
  ASSERT_TRUE(from_ldif.Init());
  ASSERT_TRUE(from_schema.Init());
  std::vector<std::string> a = LoadedSchema(from_ldif);
  std::vector<std::string> b = LoadedSchema(from_schema);
  EXPECT_EQ(a.size(), 43u);  // 41 attribute types + 2 object classes
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace sparetime::testing
