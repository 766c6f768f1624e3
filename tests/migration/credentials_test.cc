// Who a migrated process runs as: ids named on the source, mapped by name on
// the target, refusals naming the missing user or group; root or
// capabilities count as privileged. With this host's real user database
// (root, nobody) and, for names this host lacks, a second database standing
// in for the target's (the seam credentials.h offers).
#include "sparetime/migration/credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>

namespace sparetime::migration {
namespace {

// A target host whose database has only the listed users and groups.
class TargetDatabase final : public AccountDatabase {
 public:
  TargetDatabase(std::map<std::string, uint32_t> users, std::map<std::string, uint32_t> groups)
      : users_(std::move(users)), groups_(std::move(groups)) {}
  Result<uint32_t> UserId(const std::string& name) const override {
    auto it = users_.find(name);
    if (it == users_.end()) return NotFound("user " + name + " does not exist");
    return it->second;
  }
  Result<uint32_t> GroupId(const std::string& name) const override {
    auto it = groups_.find(name);
    if (it == groups_.end()) return NotFound("group " + name + " does not exist");
    return it->second;
  }

 private:
  std::map<std::string, uint32_t> users_, groups_;
};

Credentials Nobody() {
  Credentials c;
  c.uids = {65534, 65534, 65534, 65534};
  c.gids = {65534, 65534, 65534, 65534};
  c.groups = {0};
  c.cap_bounding = ~0ull >> 23;
  return c;
}

TEST(CredentialsTest, NamesTravelAndMapToTheTargetsIds) {
  auto names = NameCredentials(Nobody());
  ASSERT_TRUE(names.ok()) << names.status().ToString();
  EXPECT_EQ(names->users, (std::array<std::string, 4>{"nobody", "nobody", "nobody", "nobody"}));
  EXPECT_EQ(names->groups, (std::array<std::string, 4>{"nogroup", "nogroup", "nogroup", "nogroup"}));
  EXPECT_EQ(names->supplementary, std::vector<std::string>{"root"});

  // The same names have other ids on the target.
  TargetDatabase target({{"nobody", 2001}}, {{"nogroup", 3001}, {"root", 0}});
  auto mapped = MapCredentials(Nobody(), *names, "alpha", target);
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  EXPECT_EQ(mapped->uids, (std::array<uint32_t, 4>{2001, 2001, 2001, 2001}));
  EXPECT_EQ(mapped->gids, (std::array<uint32_t, 4>{3001, 3001, 3001, 3001}));
  EXPECT_EQ(mapped->groups, std::vector<uint32_t>{0});
  EXPECT_EQ(mapped->cap_bounding, Nobody().cap_bounding);

  // This host's own database maps them back.
  auto here = MapCredentials(Nobody(), *names, "this host");
  ASSERT_TRUE(here.ok()) << here.status().ToString();
  EXPECT_EQ(here->uids, Nobody().uids);
  EXPECT_EQ(here->gids, Nobody().gids);
}

TEST(CredentialsTest, AMissingUserOrGroupIsRefusedByName) {
  auto names = NameCredentials(Nobody());
  ASSERT_TRUE(names.ok());
  auto no_user = MapCredentials(Nobody(), *names, "alpha", TargetDatabase({}, {{"nogroup", 1}, {"root", 0}}));
  ASSERT_FALSE(no_user.ok());
  EXPECT_EQ(no_user.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(no_user.status().message().rfind("user nobody (real uid) does not exist on alpha; ", 0), 0u)
      << no_user.status().message();
  EXPECT_NE(no_user.status().message().find("create it on alpha or migrate to a host that has it"), std::string::npos);

  auto no_group = MapCredentials(Nobody(), *names, "alpha", TargetDatabase({{"nobody", 1}}, {{"nogroup", 1}}));
  ASSERT_FALSE(no_group.ok());
  EXPECT_EQ(no_group.status().message().rfind("group root (supplementary) does not exist on alpha", 0), 0u)
      << no_group.status().message();

  // An image without names (format 3) cannot be placed.
  auto unnamed = MapCredentials(Nobody(), CredentialNames{}, "alpha");
  ASSERT_FALSE(unnamed.ok());
  EXPECT_NE(unnamed.status().message().find("carries no user and group names"), std::string::npos);

  // The source refuses an id without a name before anything else.
  Credentials nameless = Nobody();
  nameless.uids[2] = 4242424;
  auto unknown = NameCredentials(nameless);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(unknown.status().message().rfind("saved uid 4242424 has no name on this host", 0), 0u)
      << unknown.status().message();
}

TEST(CredentialsTest, RootOrAnyCapabilityIsPrivileged) {
  EXPECT_FALSE(IsPrivileged(Nobody()));
  EXPECT_EQ(DescribePrivilege(Nobody()), "");
  Credentials setuid = Nobody();
  setuid.uids[2] = 0;  // saved uid root: it can become root again
  EXPECT_TRUE(IsPrivileged(setuid));
  EXPECT_EQ(DescribePrivilege(setuid), "runs as root");
  Credentials capable = Nobody();
  capable.cap_permitted = 1ull << 10;  // CAP_NET_BIND_SERVICE
  EXPECT_EQ(DescribePrivilege(capable), "holds capabilities (permitted 0x400, effective 0x0, inheritable 0x0)");

  // This test process, as /proc shows it.
  auto self = ReadCredentials(::getpid());
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  EXPECT_EQ(self->uids[0], ::getuid());
  EXPECT_EQ(IsPrivileged(*self), ::geteuid() == 0 || self->cap_permitted != 0);
}

}  // namespace
}  // namespace sparetime::migration
