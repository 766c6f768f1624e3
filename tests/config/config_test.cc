// sparetime.conf: defaults, every key, strict errors with file:line, and the
// shipped example file.
#include "sparetime/config/config.h"

#include <gtest/gtest.h>

#include "testutil/testutil.h"

namespace sparetime::config {
namespace {

constexpr char kMinimal[] = "[directory]\nbase = ou=sparetime,dc=example,dc=org\n";

TEST(ConfigTest, MinimalFileGetsDocumentedDefaults) {
  auto c = ParseConfig(kMinimal, "test.conf");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->name.empty());  // the host name
  EXPECT_EQ(c->advertise_address, c->name);
  EXPECT_EQ(c->listen_address, "0.0.0.0");
  EXPECT_EQ(c->listen_port, 7401);
  EXPECT_EQ(c->state_dir, "/var/lib/sparetime");
  EXPECT_EQ(c->directory.uri, "file:///etc/sparetime/directory.ldif");
  EXPECT_EQ(c->directory_cache, "/var/lib/sparetime/directory-cache.sqlite");
  EXPECT_EQ(c->capacity, 0u);
  EXPECT_EQ(c->directory.poll_interval, std::chrono::seconds(30));
  EXPECT_EQ(c->heartbeat, std::chrono::minutes(5));
  EXPECT_EQ(c->passphrase_file, "");  // no scheduled jobs
  EXPECT_EQ(c->backup_interval, std::chrono::hours(24));
  EXPECT_EQ(c->verify_interval, std::chrono::hours(24 * 7));
  EXPECT_EQ(c->settle, std::chrono::seconds(60));
  EXPECT_EQ(c->load_grace, std::chrono::seconds(30));
  EXPECT_EQ(c->resume_delay, std::chrono::minutes(5));
  EXPECT_FALSE(c->ignore_load);
  EXPECT_EQ(c->utmp, "/run/utmp");
}

TEST(ConfigTest, EveryKey) {
  auto c = ParseConfig(R"(
# a comment
; another
[agent]
name = alpha
listen = 10.0.0.1:7500
advertise_address = alpha.example.org
state_dir = /srv/sparetime
site = building-a
heartbeat = 2m

[storage]
capacity = 500G
owner_quota = 1.5T

[Directory]
URI = ldap://ldap.example.org
base = ou=sparetime,dc=example,dc=org
bind_dn = cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org
password_file = /etc/sparetime/ldap.secret
ca_file = /etc/ssl/certs/ca.pem
cert_file = /etc/sparetime/client.pem
key_file = /etc/sparetime/client.key
sasl_external = no
timeout = 3s
connect_timeout = 1500ms
poll_interval = 1m
page_size = 200
cache = /var/cache/sparetime/dir.sqlite

[backup]
passphrase_file = /etc/sparetime/backup.passphrase
interval = 12h
verify_interval = 3d

[scheduler]
settle = 10s
load_grace = 3s
resume_delay = 2m
ignore_load = yes
utmp = /var/run/utmp
)",
                       "full.conf");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "alpha");
  EXPECT_EQ(c->listen_address, "10.0.0.1");
  EXPECT_EQ(c->listen_port, 7500);
  EXPECT_EQ(c->advertise_address, "alpha.example.org");
  EXPECT_EQ(c->state_dir, "/srv/sparetime");
  EXPECT_EQ(c->site, "building-a");
  EXPECT_EQ(c->heartbeat, std::chrono::minutes(2));
  EXPECT_EQ(c->capacity, 500ull << 30);
  EXPECT_EQ(c->owner_quota, 3ull << 39);
  EXPECT_EQ(c->directory.uri, "ldap://ldap.example.org");
  EXPECT_EQ(c->directory.bind_dn, "cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org");
  EXPECT_EQ(c->directory.password_file, "/etc/sparetime/ldap.secret");
  EXPECT_EQ(c->directory.ca_file, "/etc/ssl/certs/ca.pem");
  EXPECT_EQ(c->directory.cert_file, "/etc/sparetime/client.pem");
  EXPECT_EQ(c->directory.key_file, "/etc/sparetime/client.key");
  EXPECT_FALSE(c->directory.sasl_external);
  EXPECT_EQ(c->directory.operation_timeout, std::chrono::seconds(3));
  EXPECT_EQ(c->directory.network_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(c->directory.poll_interval, std::chrono::minutes(1));
  EXPECT_EQ(c->directory.page_size, 200);
  EXPECT_EQ(c->directory_cache, "/var/cache/sparetime/dir.sqlite");
  EXPECT_EQ(c->passphrase_file, "/etc/sparetime/backup.passphrase");
  EXPECT_EQ(c->backup_interval, std::chrono::hours(12));
  EXPECT_EQ(c->verify_interval, std::chrono::hours(72));
  EXPECT_EQ(c->settle, std::chrono::seconds(10));
  EXPECT_EQ(c->load_grace, std::chrono::seconds(3));
  EXPECT_EQ(c->resume_delay, std::chrono::minutes(2));
  EXPECT_TRUE(c->ignore_load);
  EXPECT_EQ(c->utmp, "/var/run/utmp");
}

TEST(ConfigTest, Ipv6Listen) {
  auto c = ParseConfig(std::string("[agent]\nlisten = [fd00::1]:7402\n") + kMinimal, "x");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->listen_address, "fd00::1");
  EXPECT_EQ(c->listen_port, 7402);
}

// Each malformed line is refused with its line number and a hint.
TEST(ConfigTest, ErrorsNameFileLineAndWhatIsValid) {
  struct Case {
    std::string text;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"[agent]\nnmae = alpha\n", "bad.conf:2: unknown key 'nmae' in [agent] (known:"},
      {"[agnet]\n", "bad.conf:1: unknown section [agnet]"},
      {"name = alpha\n", "bad.conf:1: 'name' is outside any section"},
      {"[agent]\nname alpha\n", "bad.conf:2: expected 'key = value'"},
      {"[agent]\nname = a\nname = b\n", "bad.conf:3: 'name' is set twice"},
      {"[agent]\nlisten = 0.0.0.0:99999\n", "bad.conf:2: [agent] listen:"},
      {"[agent]\nstate_dir = relative/dir\n", "must be an absolute path"},
      {"[storage]\ncapacity = 10 furlongs\n", "unknown unit 'furlongs'"},
      {"[storage]\ncapacity = lots\n", "is not a size"},
      {"[directory]\ntimeout = 0s\n", "must be more than 0"},
      {"[directory]\npoll_interval = 5 fortnights\n", "unknown unit"},
      {"[directory]\nsasl_external = maybe\n", "is not a boolean"},
      {"[directory]\npage_size = 0\n", "page_size"},
      {"[agent\n", "bad.conf:1: a section header"},
      {"[agent]\nname = alpha\n", "[directory] base is required"},
      {"[backup]\npassphrase_file = secret.txt\n", "[backup] passphrase_file: must be an absolute"},
      {"[backup]\ninterval = 0s\n", "[backup] interval: must be more than 0"},
      {"[scheduler]\nignore_load = sometimes\n", "is not a boolean"},
      {"[scheduler]\nsettle = soon\n", "is not a duration"},
  };
  for (const auto& c : cases) {
    auto r = ParseConfig(c.text, "bad.conf");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

TEST(ConfigTest, SizesAndDurations) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseSize("2 GiB"), 2ull << 30);
  EXPECT_EQ(*ParseSize("1kb"), 1024u);
  EXPECT_FALSE(ParseSize("1.5").ok());
  EXPECT_FALSE(ParseSize("-5G").ok());
  EXPECT_FALSE(ParseSize("99999999999P").ok());
  EXPECT_EQ(ParseDuration("500ms")->count(), 500);
  EXPECT_EQ(ParseDuration("90")->count(), 90000);
  EXPECT_EQ(ParseDuration("1.5h")->count(), 5400000);
  EXPECT_FALSE(ParseDuration("").ok());
}

TEST(ConfigTest, LoadsTheShippedExample) {
  auto c = LoadConfig(std::string(SPARETIME_SOURCE_DIR) + "/conf/sparetime.conf");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->directory.base_dn.empty());
}

TEST(ConfigTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  auto c = LoadConfig(dir.path() + "/nope.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(c.status().message().find("nope.conf"), std::string::npos);
}

}  // namespace
}  // namespace sparetime::config

namespace sparetime::config {
namespace {

TEST(ConfigTest, BackupDevicesAreAbsolutePathsSeparatedBySpacesOrCommas) {
  auto c = ParseConfig(std::string("[backup]\ndevices = /dev/vg0/root, /dev/sda\t/srv/disk.img\n") +
                           kMinimal,
                       "x.conf");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->devices,
            (std::vector<std::string>{"/dev/vg0/root", "/dev/sda", "/srv/disk.img"}));
  auto none = ParseConfig(kMinimal, "x.conf");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->devices.empty());
  auto bad = ParseConfig(std::string("[backup]\ndevices = /dev/sda sdb\n") + kMinimal, "bad.conf");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "bad.conf:2: [backup] devices: \"sdb\" is not an absolute path (name devices as "
            "/dev/..., separated by spaces)");
}

}  // namespace
}  // namespace sparetime::config
