// The file directory: LDIF parsing edge cases and errors with file:line,
// entry selection, registration (create, update, key mismatch refused, other
// entries and comments kept), concurrent registration from two processes,
// change notification, and the URI schemes OpenDirectory accepts.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include <chrono>
#include <fstream>
#include <set>

#include "sparetime/base/fd.h"
#include "sparetime/directory/directory.h"
#include "testutil/testutil.h"

namespace sparetime::directory {
namespace {

using std::chrono::milliseconds;
using testing::TempDir;

constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";
constexpr char kAlphaKey[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr char kBetaKey[] = "Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0=";

// The start of a file directory: the tree, one policy and one admin-enrolled
// agent without a key yet, with comments around.
constexpr char kTree[] =
    "# A lab's file directory.\n"
    "version: 1\n"
    "\n"
    "dn: ou=sparetime,dc=example,dc=org\n"
    "objectClass: organizationalUnit\n"
    "ou: sparetime\n"
    "\n"
    "# Beta was enrolled by an admin; it has no key yet.\n"
    "dn: cn=beta,ou=agents,ou=sparetime,dc=example,dc=org\n"
    "objectClass: sparetimeAgent\n"
    "cn: beta\n"
    "sparetimeSite: building-b\n"
    "description: enrolled by the admin, a long description that is folded over\n"
    "  two lines\n"
    "\n"
    "dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\n"
    "objectClass: sparetimePolicy\n"
    "cn: default\n"
    "sparetimeDomainDefault: TRUE\n"
    "sparetimeReplicas: 2\n"
    "\n"
    "# trailing comment\n";

std::string ReadAll(const std::string& path) {
  Result<std::string> s = ReadFileToString(path);
  return s.ok() ? *s : "";
}

void WriteAll(const std::string& path, const std::string& text) {
  ASSERT_TRUE(WriteFileAtomic(path, text).ok());
}

std::unique_ptr<Directory> Open(const std::string& path, milliseconds poll = milliseconds(20)) {
  DirectoryConfig config;
  config.uri = path;
  config.base_dn = kBase;
  config.poll_interval = poll;
  Result<std::unique_ptr<Directory>> d = OpenDirectory(config);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(*d) : nullptr;
}

PublicKey Key(const char* base64) {
  Entry e;
  e.dn = "cn=x,ou=agents," + std::string(kBase);
  e.Add("cn", "x");
  e.Add("sparetimeAddress", "x");
  e.Add("sparetimePort", "1");
  e.Add("sparetimePublicKey", base64);
  return ParseAgent(e)->public_key;
}

AgentRegistration Registration(const std::string& name, const char* key = kAlphaKey) {
  AgentRegistration r;
  r.name = name;
  r.address = name + ".example.org";
  r.port = 7401;
  r.public_key = Key(key);
  r.site = "building-a";
  r.capacity = 1000;
  r.free = 600;
  r.version = "0.1.0";
  r.devices_held = {"beta:/dev/sda"};
  return r;
}

TimePoint At(int64_t unix_seconds) { return TimePoint(std::chrono::seconds(unix_seconds)); }

TEST(LdifDirectory, ParsesEdgeCases) {
  TempDir dir;
  std::string path = dir / "d.ldif";
  // CRLF ends, a folded comment, base64 DN and value, a folded base64 value,
  // changetype: add, blank lines holding spaces, no newline at the end.
  const std::string text =
      "version: 1\r\n"
      "# a comment that is\r\n"
      "  folded\r\n"
      "\r\n"
      "dn:: Y249YWxwaGEsb3U9YWdlbnRzLG91PXNwYXJldGltZSxkYz1leGFtcGxlLGRjPW9yZw==\r\n"
      "changetype: add\r\n"
      "objectClass: sparetimeAgent\r\n"
      "cn: alpha\r\n"
      "# a comment inside the entry\r\n"
      "sparetimePublicKey: 11qYAYKxCrfVS/7TyWQHO\r\n"
      " g7hcvPapiMlrwIaaPcHURo=\r\n"
      "sparetimeAddress:alpha.example.org\r\n"
      "sparetimePort:    7401\r\n"
      "description:: w6lsw6h2ZSDDoCBsJ8OpY29sZQ==\r\n"
      "description:: //79\r\n"
      "   \t\r\n"
      "dn: CN=Lab, OU=Groups, ou=sparetime, dc=example, dc=org\r\n"
      "objectClass: groupOfNames\r\n"
      "member: cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org\r\n"
      "\r\n"
      "dn: cn=unused,ou=groups,ou=sparetime,dc=example,dc=org\r\n"
      "objectClass: groupOfNames\r\n"
      "member: cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org\r\n"
      "\r\n"
      "dn: cn=p,ou=policies,ou=sparetime,dc=example,dc=org\r\n"
      "objectClass: sparetimePolicy\r\n"
      "cn: p\r\n"
      "sparetimeAppliesToGroup: cn=lab,ou=groups,ou=sparetime,dc=example,dc=org\r\n"
      "\r\n"
      "dn: cn=elsewhere,ou=agents,dc=example,dc=org\r\n"
      "objectClass: sparetimeAgent\r\n"
      "cn: elsewhere\r\n"
      "\r\n"
      "dn: cn=notanagent,ou=agents,ou=sparetime,dc=example,dc=org\r\n"
      "objectClass: device\r\n"
      "cn: notanagent";
  WriteAll(path, text);
  auto d = Open(path);
  Result<DirectoryContents> c = d->Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->agents.size(), 1u);
  const Entry& alpha = c->agents[0];
  EXPECT_EQ(alpha.dn, "cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org");
  EXPECT_EQ(alpha.Values("sparetimePublicKey")[0], kAlphaKey);
  EXPECT_EQ(alpha.Values("sparetimeAddress")[0], "alpha.example.org");
  EXPECT_EQ(alpha.Values("sparetimePort")[0], "7401");
  ASSERT_EQ(alpha.Values("description").size(), 2u);
  EXPECT_EQ(alpha.Values("description")[0], "\xc3\xa9l\xc3\xa8ve \xc3\xa0 l'\xc3\xa9""cole");
  EXPECT_EQ(alpha.Values("description")[1], "\xff\xfe\xfd");
  EXPECT_TRUE(alpha.Values("changetype").empty());
  ASSERT_TRUE(ParseAgent(alpha).ok()) << ParseAgent(alpha).status().ToString();
  ASSERT_EQ(c->policies.size(), 1u);
  ASSERT_EQ(c->groups.size(), 1u);  // only the group a policy names
  EXPECT_EQ(c->groups[0].Values("member").size(), 1u);
}

TEST(LdifDirectory, MalformedFileErrorsNameFileAndLine) {
  TempDir dir;
  std::string path = dir / "d.ldif";
  auto d = Open(path);
  struct Case {
    std::string text;
    int line;
    const char* what;
  };
  const std::string entry = "dn: cn=a,ou=agents,ou=sparetime,dc=example,dc=org\ncn: a\n";
  const Case cases[] = {
      {"# c\n\ncn: a\n", 3, "must start with \"dn:\""},
      {" continued\n", 1, "continuation line"},
      {entry + "jpegPhoto:< file:///etc/passwd\n", 3, "URL values"},
      {entry + "description:: %%%\n", 3, "base64"},
      {entry + "this line has no colon\n", 3, "expected \"attribute: value\""},
      {entry + "\n" + entry, 4, "appears again (first at line 1)"},
      {"version: 2\n\n" + entry, 1, "version"},
      {entry + "\nversion: 1\n", 4, "only allowed at the top"},
      {entry + "changetype: modify\n", 3, "change records"},
      {"dn:\ncn: a\n", 1, "empty DN"},
      {entry + "dn: cn=b,ou=agents,ou=sparetime,dc=example,dc=org\n", 3, "second \"dn:\""},
  };
  for (const Case& c : cases) {
    WriteAll(path, c.text);
    Result<DirectoryContents> r = d->Fetch();
    ASSERT_FALSE(r.ok()) << c.text;
    const std::string m = r.status().message();
    EXPECT_NE(m.find(path + ":" + std::to_string(c.line) + ": "), std::string::npos) << m;
    EXPECT_NE(m.find(c.what), std::string::npos) << "want \"" << c.what << "\" in: " << m;
  }
  ASSERT_EQ(::unlink(path.c_str()), 0);
  Result<DirectoryContents> missing = d->Fetch();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

TEST(LdifDirectory, RegisterCreatesAndUpdatesOnlyItsOwnEntry) {
  TempDir dir;
  std::string path = dir / "d.ldif";
  WriteAll(path, kTree);
  auto d = Open(path);

  // A new agent: appended after everything else, which stays byte for byte.
  ASSERT_TRUE(d->Register(Registration("alpha"), At(1'800'000'000)).ok());
  std::string after = ReadAll(path);
  ASSERT_TRUE(after.starts_with(std::string(kTree))) << after;
  Result<DirectoryContents> c = d->Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  DirectoryView v = Parse(*c);
  ASSERT_EQ(v.agents.size(), 1u) << (v.warnings.empty() ? "" : v.warnings[0]);  // beta: no key
  const AgentRecord& alpha = v.agents[0];
  EXPECT_EQ(alpha.name, "alpha");
  EXPECT_EQ(alpha.address, "alpha.example.org");
  EXPECT_EQ(alpha.port, 7401);
  EXPECT_EQ(alpha.public_key, Key(kAlphaKey));
  EXPECT_EQ(alpha.site, "building-a");
  EXPECT_EQ(alpha.capacity, 1000u);
  EXPECT_EQ(alpha.free, 600u);
  EXPECT_EQ(alpha.last_seen, At(1'800'000'000));
  EXPECT_EQ(alpha.devices_held, std::vector<std::string>{"beta:/dev/sda"});

  // Re-register: dynamic values change, the site stays as first written.
  AgentRegistration again = Registration("alpha");
  again.address = "192.0.2.9";
  again.free = 500;
  again.site = "moved";
  again.devices_held.clear();
  ASSERT_TRUE(d->Register(again, At(1'800'000'060)).ok());
  v = Parse(*d->Fetch());
  ASSERT_EQ(v.agents.size(), 1u);
  EXPECT_EQ(v.agents[0].address, "192.0.2.9");
  EXPECT_EQ(v.agents[0].free, 500u);
  EXPECT_EQ(v.agents[0].site, "building-a");
  EXPECT_EQ(v.agents[0].last_seen, At(1'800'000'060));
  EXPECT_TRUE(v.agents[0].devices_held.empty());
  std::string text = ReadAll(path);
  EXPECT_TRUE(text.starts_with(std::string(kTree))) << text;
  EXPECT_EQ(text.find("sparetimeDeviceHeld"), std::string::npos);

  // Beta, enrolled without a key, gets its key; its folded description, the
  // comments and the other entries are kept.
  ASSERT_TRUE(d->Register(Registration("beta", kBetaKey), At(1'800'000'100)).ok());
  text = ReadAll(path);
  EXPECT_TRUE(text.starts_with("# A lab's file directory.\nversion: 1\n\ndn: ou=sparetime,"));
  EXPECT_NE(text.find("\n\n# Beta was enrolled by an admin; it has no key yet.\n"
                      "dn: cn=beta,ou=agents,ou=sparetime,dc=example,dc=org\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# trailing comment\n"), std::string::npos);
  v = Parse(*d->Fetch());
  ASSERT_EQ(v.agents.size(), 2u) << (v.warnings.empty() ? "" : v.warnings[0]);
  EXPECT_EQ(v.agents[1].public_key, Key(kBetaKey));
  EXPECT_EQ(v.agents[1].site, "building-b");
  Result<DirectoryContents> raw = d->Fetch();
  const Entry& beta = raw->agents[0];
  EXPECT_EQ(beta.Values("description")[0],
            "enrolled by the admin, a long description that is folded over two lines");
  EXPECT_EQ(raw->policies.size(), 1u);
}

TEST(LdifDirectory, KeyMismatchIsRefusedAndChangesNothing) {
  TempDir dir;
  std::string path = dir / "d.ldif";
  WriteAll(path, kTree);
  auto d = Open(path);
  ASSERT_TRUE(d->Register(Registration("alpha", kAlphaKey), At(1'800'000'000)).ok());
  std::string before = ReadAll(path);
  Status st = d->Register(Registration("alpha", kBetaKey), At(1'800'000'060));
  ASSERT_EQ(st.code(), ErrorCode::kAuthFailed) << st.ToString();
  EXPECT_NE(st.message().find(kAlphaKey), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(kBetaKey), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cn=alpha,ou=agents"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("only an admin"), std::string::npos);
  EXPECT_EQ(ReadAll(path), before);

  // Bad registrations are refused before touching the file.
  AgentRegistration bad = Registration("al)pha");
  EXPECT_EQ(d->Register(bad, At(0)).code(), ErrorCode::kInvalidArgument);
  bad = Registration("alpha");
  bad.port = 0;
  EXPECT_EQ(d->Register(bad, At(0)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ReadAll(path), before);
}

// A missing file is an outage (unmounted, being replaced), not an empty
// domain: registering must not create a fresh directory the agent would then
// read as the truth.
TEST(LdifDirectory, RegisterNeverCreatesAMissingFile) {
  TempDir dir;
  std::string path = dir / "new.ldif";
  auto d = Open(path);
  ASSERT_EQ(d->Fetch().status().code(), ErrorCode::kUnavailable);
  Status registered = d->Register(Registration("alpha"), At(1'800'000'000));
  EXPECT_EQ(registered.code(), ErrorCode::kUnavailable);
  EXPECT_NE(registered.message().find(path), std::string::npos) << registered.ToString();
  EXPECT_FALSE(std::filesystem::exists(path));
}

// Two processes registering many agents at once: the flock serialises the
// read-modify-write, so no registration is lost.
TEST(LdifDirectory, ConcurrentRegistrationFromTwoProcessesLosesNothing) {
  TempDir dir;
  std::string path = dir / "d.ldif";
  WriteAll(path, kTree);
  constexpr int kPerProcess = 25;
  std::vector<pid_t> children;
  for (const char* prefix : {"a", "b"}) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto d = Open(path);
      for (int i = 0; i < kPerProcess; ++i) {
        if (!d || !d->Register(Registration(prefix + std::to_string(i)), At(1'800'000'000 + i)).ok()) {
          ::_exit(1);
        }
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto d = Open(path);
  DirectoryView v = Parse(*d->Fetch());
  std::set<std::string> names;
  for (const AgentRecord& a : v.agents) names.insert(a.name);
  EXPECT_EQ(names.size(), 2u * kPerProcess);
  EXPECT_EQ(names.count("a0") + names.count("a24") + names.count("b0") + names.count("b24"), 4u);
  EXPECT_TRUE(ReadAll(path).starts_with(std::string(kTree)));
}

TEST(LdifDirectory, WaitForChangeNoticesOtherWritersNotItsOwnHeartbeat) {
  TempDir dir;
  std::string path = dir / "d.ldif";
  WriteAll(path, kTree);
  auto d = Open(path);
  auto other = Open(path);

  auto start = std::chrono::steady_clock::now();
  Result<bool> changed = d->WaitForChange(milliseconds(150));
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_GE(waited, milliseconds(150));
  EXPECT_LT(waited, milliseconds(2000));

  ASSERT_TRUE(d->Register(Registration("alpha"), At(1'800'000'000)).ok());
  EXPECT_FALSE(*d->WaitForChange(milliseconds(100)));  // its own write

  ASSERT_TRUE(other->Register(Registration("beta", kBetaKey), At(1'800'000'000)).ok());
  EXPECT_TRUE(*d->WaitForChange(milliseconds(2000)));
  EXPECT_FALSE(*d->WaitForChange(milliseconds(50)));  // reported once

  // An edit in place (same inode) by an admin, noticed while waiting.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::usleep(100'000);
    std::ofstream(path, std::ios::app) << "\n# edited\n";
    ::_exit(0);
  }
  start = std::chrono::steady_clock::now();
  EXPECT_TRUE(*d->WaitForChange(milliseconds(5000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(3000));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);

  ASSERT_EQ(::unlink(path.c_str()), 0);  // removal is a change too
  EXPECT_TRUE(*d->WaitForChange(milliseconds(2000)));
}

TEST(OpenDirectory, AcceptsLdapFileAndPathsRefusesTheRest) {
  DirectoryConfig config;
  config.base_dn = kBase;
  for (const char* ok : {"/etc/sparetime/directory.ldif", "file:///etc/sparetime/directory.ldif",
                         "FILE://localhost/etc/sparetime/directory.ldif"}) {
    config.uri = ok;
    Result<std::unique_ptr<Directory>> d = OpenDirectory(config);
    ASSERT_TRUE(d.ok()) << ok << ": " << d.status().ToString();
    EXPECT_EQ((*d)->Describe(), "/etc/sparetime/directory.ldif (" + std::string(kBase) + ")");
  }
  for (const char* bad : {"http://example.org/", "directory.ldif", "", "file://etc/x.ldif",
                          "ldap.example.org"}) {
    config.uri = bad;
    Result<std::unique_ptr<Directory>> d = OpenDirectory(config);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find("\"" + std::string(bad) + "\""), std::string::npos);
  }
  config.uri = "http://example.org/";
  EXPECT_NE(OpenDirectory(config).status().message().find("ldaps://"), std::string::npos);
  config.uri = "/etc/sparetime/directory.ldif";
  config.base_dn = "sparetime";
  EXPECT_EQ(OpenDirectory(config).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace sparetime::directory
