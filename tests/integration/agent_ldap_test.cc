// sparetimed against a real slapd set up as docs/ldap.md tells a new admin:
// an empty database (no suffix entry), the project's schema and ACLs
// (cn=config, ldapadd/ldapmodify -Y EXTERNAL, done by SlapdServer::Init),
// then conf/ldap/example-suffix.ldif and conf/ldap/example-dit.ldif with the
// example keys removed and the passwords replaced by slappasswd hashes, each
// step the documented command. Two agents binding as themselves must then
// register, publish their keys and see each other (issue 27 item 2).
//
// The same running agents then check: a site in sparetime.conf that the
// entry does not have is warned about (item 3); a policy change is logged
// with what changed (item 8); the directory stopped and started is noticed
// and recovered from within seconds although the heartbeat is 60 s, and
// `sparetime status` says it is unreachable meanwhile (item 1).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "sparetime/base/fd.h"
#include "testutil/agent_process.h"
#include "testutil/slapd.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

constexpr char kConfDir[] = SPARETIME_SOURCE_DIR "/conf/ldap";
constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";

std::string AgentDn(const std::string& name) { return "cn=" + name + ",ou=agents," + kBase; }

class AgentLdapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SlapdServer::Available()) GTEST_SKIP() << "slapd/ldap-utils are not installed";
    if (!IsRoot()) GTEST_SKIP() << "needs root";
    // syncprov as docs/ldap.md's "Change notification" enables it.
    server_ = std::make_unique<SlapdServer>(kConfDir, SlapdServer::ConfigForm::kCnConfig,
                                            SlapdOptions{.syncprov = true, .suffix = false});
    ASSERT_TRUE(server_->Init());
  }

  // The documented steps after the schema and ACLs, as shell commands.
  void LoadAsDocumented() {
    const std::string ldapadd = "ldapadd -x -H " + ShellQuote(server_->uri()) + " -D " +
                                ShellQuote(SlapdServer::kRootDn) + " -w " +
                                ShellQuote(SlapdServer::kRootPassword);
    // Without the suffix entry the tree cannot be added.
    CommandResult r = RunCommand(ldapadd + " -f " + ShellQuote(std::string(kConfDir) +
                                                                "/example-dit.ldif"));
    ASSERT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("No such object"), std::string::npos) << r.err;
    r = RunCommand(ldapadd + " -f " + ShellQuote(std::string(kConfDir) + "/example-suffix.ldif"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // docs/ldap.md: copy the example, drop its keys, set new passwords.
    const std::string dit = dir_ / "dit.ldif";
    r = RunCommand("cp " + ShellQuote(std::string(kConfDir) + "/example-dit.ldif") + " " +
                   ShellQuote(dit) + " && sed -i '/^sparetimePublicKey:/d' " + ShellQuote(dit));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const std::string name : {"alpha", "beta"}) {
      // Replace the userPassword of cn=NAME with `slappasswd -s NEW`'s hash.
      r = RunCommand("h=$(slappasswd -s " + name + "-new) && sed -i \"/^dn: cn=" + name +
                     ",/,/^$/s|^userPassword: .*|userPassword: $h|\" " + ShellQuote(dit));
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    r = RunCommand(ldapadd + " -f " + ShellQuote(dit));
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    // The old example password no longer binds; the new one does.
    r = server_->Tool("ldapwhoami", {AgentDn("alpha"), "alpha-secret"}, "");
    EXPECT_NE(r.exit_code, 0);
    r = server_->Tool("ldapwhoami", {AgentDn("alpha"), "alpha-new"}, "");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }

  std::string WriteConfig(const std::string& name, const std::string& site) {
    const std::string password = dir_ / (name + ".secret");
    {
      std::ofstream out(password);
      out << name << "-new\n";
    }
    ::chmod(password.c_str(), 0600);
    const std::string path = dir_ / (name + ".conf");
    std::ofstream out(path);
    out << "[agent]\nname = " << name << "\nlisten = 127.0.0.1:0\nadvertise_address = 127.0.0.1\n"
        << "state_dir = " << (dir_ / ("state-" + name)) << "\nheartbeat = 60s\n"
        << (site.empty() ? "" : "site = " + site + "\n") << "\n[storage]\ncapacity = 1G\n\n"
        << "[directory]\nuri = " << server_->uri() << "\nbase = " << kBase
        << "\nbind_dn = " << AgentDn(name) << "\npassword_file = " << password
        << "\nconnect_timeout = 1s\ntimeout = 2s\n";
    return path;
  }

  json Status(const std::string& name) {
    Result<std::string> text = ReadFileToString(dir_ / ("state-" + name) + "/status.json");
    return text.ok() ? json::parse(*text, nullptr, false) : json();
  }

  TempDir dir_;
  std::unique_ptr<SlapdServer> server_;
};

TEST_F(AgentLdapTest, DocumentedSetupGivesWorkingAgentsThatFollowTheDirectory) {
  LoadAsDocumented();
  if (HasFatalFailure()) return;
  const std::string alpha_conf = WriteConfig("alpha", "building-c");  // the entry says building-a
  const std::string beta_conf = WriteConfig("beta", "building-b");    // as the entry says
  AgentProcess alpha(alpha_conf, dir_ / "alpha.log");
  AgentProcess beta(beta_conf, dir_ / "beta.log");

  // Both register (publishing their own keys) and see each other as peers.
  auto working = [&](const std::string& name, const std::string& peer) {
    json st = Status(name);
    return st.is_object() && st["registration"]["ok"] == true &&
           st["peers"] == json::array({peer});
  };
  ASSERT_TRUE(WaitUntil([&] { return working("alpha", "beta") && working("beta", "alpha"); },
                        seconds(90)))
      << Status("alpha").dump(2) << Status("beta").dump(2) << alpha.Log() << beta.Log();
  CommandResult keys = server_->AsRoot(
      "ldapsearch", "-LLL -b " + ShellQuote(std::string("ou=agents,") + kBase) +
                        " '(sparetimePublicKey=*)' cn");
  ASSERT_EQ(keys.exit_code, 0) << keys.err;
  EXPECT_NE(keys.out.find("cn: alpha"), std::string::npos) << keys.out;
  EXPECT_NE(keys.out.find("cn: beta"), std::string::npos) << keys.out;

  // Item 3: the site is the admin's; a disagreeing config is warned about.
  const std::string site_warning = Status("alpha")["registration"]["site_warning"];
  EXPECT_NE(site_warning.find("\"building-c\""), std::string::npos) << site_warning;
  EXPECT_NE(site_warning.find("sparetimeSite \"building-a\""), std::string::npos) << site_warning;
  EXPECT_EQ(Status("beta")["registration"]["site_warning"], "");
  EXPECT_NE(alpha.Log().find("site: [agent] site is \"building-c\""), std::string::npos)
      << alpha.Log();
  CommandResult text = RunCommand(std::string(SPARETIME_CLI) + " --config " +
                                  ShellQuote(alpha_conf) + " status");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("site:       [agent] site is \"building-c\""), std::string::npos)
      << text.out;

  // Item 8: a policy change is logged with what changed.
  CommandResult mod = server_->AsRoot(
      "ldapmodify", "",
      "dn: cn=lab,ou=policies," + std::string(kBase) +
          "\nchangetype: modify\nreplace: sparetimeReplicas\nsparetimeReplicas: 4\n");
  ASSERT_EQ(mod.exit_code, 0) << mod.err;
  EXPECT_TRUE(WaitUntil(
      [&] { return alpha.Log().find("policy changed: sparetimeReplicas 3 -> 4") != std::string::npos; },
      seconds(10)))
      << alpha.Log();

  // Item 1: the directory goes away and comes back; the heartbeat is 60 s.
  const int64_t registered_before = Status("alpha")["registration"]["at"];
  server_->Stop();
  auto start = Steady::now();
  ASSERT_TRUE(WaitUntil([&] { return Status("alpha")["directory"]["from_cache"] == true; },
                        seconds(20)))
      << Status("alpha").dump(2) << alpha.Log();
  const auto noticed = std::chrono::duration_cast<milliseconds>(Steady::now() - start);
  EXPECT_LE(noticed, seconds(10));
  text = RunCommand(std::string(SPARETIME_CLI) + " --config " + ShellQuote(alpha_conf) +
                    " status");
  EXPECT_NE(text.out.find("directory:  " + server_->uri() + " (" + kBase + ") UNREACHABLE ("),
            std::string::npos)
      << text.out;
  EXPECT_NE(alpha.Log().find("directory: change watch lost"), std::string::npos) << alpha.Log();

  std::this_thread::sleep_for(seconds(2));  // a second past any registration in flight
  ASSERT_TRUE(server_->Start());
  start = Steady::now();
  ASSERT_TRUE(WaitUntil(
      [&] {
        json st = Status("alpha");
        return st["directory"]["from_cache"] == false && st["registration"]["ok"] == true &&
               st["registration"]["at"].get<int64_t>() > registered_before;
      },
      seconds(20)))
      << Status("alpha").dump(2) << alpha.Log();
  const auto recovered = std::chrono::duration_cast<milliseconds>(Steady::now() - start);
  EXPECT_LE(recovered, seconds(10));
  EXPECT_NE(alpha.Log().find("directory: change watch reconnected"), std::string::npos)
      << alpha.Log();
  text = RunCommand(std::string(SPARETIME_CLI) + " --config " + ShellQuote(alpha_conf) +
                    " status");
  EXPECT_NE(text.out.find("registered: yes"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("UNREACHABLE"), std::string::npos) << text.out;
  std::printf("directory loss noticed after %lld ms, recovery after %lld ms (heartbeat 60 s)\n",
              static_cast<long long>(noticed.count()), static_cast<long long>(recovered.count()));
}

}  // namespace
}  // namespace sparetime::testing
