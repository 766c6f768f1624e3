// ops::Migrate's steps before anything stops: the target is looked up in
// the directory view (not itself, not an unknown name), the migration key is
// created on first use, and a process that cannot be checkpointed is refused
// before any connection — the source is untouched in every case.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sparetime/ops/migrate.h"
#include "testutil/testutil.h"

namespace sparetime::ops {
namespace {

using sparetime::testing::TempDir;

directory::DirectoryView ViewWith(const std::string& name, uint16_t port) {
  directory::DirectoryView view;
  directory::AgentRecord a;
  a.name = name;
  a.address = "192.0.2.7";
  a.port = port;
  a.public_key.fill(0x11);
  view.agents.push_back(a);
  return view;
}

TEST(OpsMigrate, FindAgentNamesTheTargetOrSaysWhy) {
  directory::DirectoryView view = ViewWith("Beta", 7443);
  Result<peer::PeerEndpoint> beta = FindAgent(view, "alpha", "beta", "ldap://dir");
  ASSERT_TRUE(beta.ok()) << beta.status().ToString();
  EXPECT_EQ(beta->name, "Beta");
  EXPECT_EQ(beta->host, "192.0.2.7");
  EXPECT_EQ(beta->port, 7443);

  Result<peer::PeerEndpoint> self = FindAgent(view, "alpha", "ALPHA", "ldap://dir");
  EXPECT_EQ(self.status().code(), ErrorCode::kInvalidArgument);
  Result<peer::PeerEndpoint> none = FindAgent(view, "alpha", "gamma", "ldap://dir");
  EXPECT_EQ(none.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(none.status().message().find("ldap://dir"), std::string::npos);
  EXPECT_NE(none.status().message().find("sparetime peers"), std::string::npos);
}

TEST(OpsMigrate, RefusesBeforeConnectingAndLeavesTheSourceUntouched) {
  TempDir dir;
  config::AgentConfig config;
  config.name = "alpha";
  config.state_dir = dir.path();
  directory::DirectoryView view = ViewWith("beta", 1);  // nothing listens there
  MigrateRequest r;
  r.pid = 0x7ffffff0;  // no such process
  r.to = "beta";
  r.config = &config;
  r.view = &view;
  r.directory_source = "test";
  r.identity = nullptr;  // never reached: the preflight refuses first
  SourceState source = SourceState::kKilled;
  Result<MigrateReport> report = Migrate(r, &source);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(source, SourceState::kUntouched);
  struct stat st {};
  EXPECT_EQ(::stat((dir / "migration/key").c_str(), &st), 0) << "the key is made on first use";
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  r.to = "alpha";
  EXPECT_EQ(Migrate(r, &source).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(source, SourceState::kUntouched);
}

}  // namespace
}  // namespace sparetime::ops
