// DirectoryClient over the real file directory and a real SQLite cache: fresh
// reads fill the cache; an unreachable (removed) or malformed directory falls
// back to it, marked as such with the reason; a failed read never replaces
// it; it survives reopening; no cache + unreachable is kUnavailable.
#include "sparetime/directory/client.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "sparetime/base/fd.h"
#include "sparetime/base/sqlite_db.h"
#include "testutil/testutil.h"

namespace sparetime::directory {
namespace {

using testing::TempDir;

constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";

// Wall time is set by the test; sleeping and monotonic time are real.
class FixedWallClock final : public Clock {
 public:
  std::chrono::system_clock::time_point WallNow() const override { return wall; }
  std::chrono::steady_clock::time_point MonoNow() const override {
    return SystemClock().MonoNow();
  }
  void SleepFor(std::chrono::nanoseconds d) const override { SystemClock().SleepFor(d); }
  std::chrono::system_clock::time_point wall{std::chrono::seconds(1'800'000'000)};
};

std::string AgentLdif(const std::string& name, const std::string& site_line) {
  return "dn: cn=" + name + ",ou=agents,ou=sparetime,dc=example,dc=org\n"
         "objectClass: sparetimeAgent\n"
         "cn: " + name + "\n"
         "sparetimeAddress: " + name + ".example.org\n"
         "sparetimePort: 7401\n"
         "sparetimePublicKey: 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n" +
         site_line + "\n";
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::string> example = ReadFileToString(SPARETIME_SOURCE_DIR "/conf/ldap/example-dit.ldif");
    ASSERT_TRUE(example.ok());
    example_ = *example;
    Write(example_);
  }

  void Write(const std::string& text) { ASSERT_TRUE(WriteFileAtomic(ldif_, text).ok()); }

  std::unique_ptr<DirectoryClient> Open(const std::string& cache) {
    DirectoryConfig config;
    config.uri = ldif_;
    config.base_dn = kBase;
    config.poll_interval = std::chrono::milliseconds(10);
    Result<std::unique_ptr<Directory>> dir = OpenDirectory(config, clock_);
    EXPECT_TRUE(dir.ok()) << dir.status().ToString();
    if (!dir.ok()) return nullptr;
    Result<std::unique_ptr<DirectoryClient>> client = DirectoryClient::Open(std::move(*dir), cache, clock_);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  TempDir tmp_;
  std::string ldif_ = tmp_ / "directory.ldif";
  std::string cache_ = tmp_ / "cache.db";
  std::string example_;
  FixedWallClock clock_;
};

TEST_F(ClientTest, FallsBackToTheCacheWhenTheDirectoryIsUnreachable) {
  auto client = Open(cache_);
  Result<DirectoryState> fresh = client->Refresh();
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_FALSE(fresh->from_cache);
  EXPECT_TRUE(fresh->cache_reason.empty());
  EXPECT_EQ(fresh->view.agents.size(), 2u);
  EXPECT_EQ(fresh->view.policies.size(), 3u);
  EXPECT_EQ(fresh->fetched_at, clock_.wall);
  EXPECT_EQ(fresh->source, ldif_ + " (" + kBase + ")");
  const TimePoint first_read = clock_.wall;

  ASSERT_EQ(::unlink(ldif_.c_str()), 0);
  clock_.wall += std::chrono::minutes(5);
  Result<DirectoryState> cached = client->Refresh();
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  EXPECT_TRUE(cached->from_cache);
  EXPECT_NE(cached->cache_reason.find("unavailable"), std::string::npos) << cached->cache_reason;
  EXPECT_NE(cached->cache_reason.find(ldif_), std::string::npos) << cached->cache_reason;
  EXPECT_EQ(cached->fetched_at, first_read);
  EXPECT_EQ(cached->source, fresh->source);
  ASSERT_EQ(cached->view.agents.size(), 2u);
  EXPECT_EQ(cached->view.agents[0].name, "alpha");
  EXPECT_EQ(cached->view.agents[0].public_key, fresh->view.agents[0].public_key);
  EXPECT_EQ(cached->view.group_members, fresh->view.group_members);
  EXPECT_EQ(ResolvePolicy(cached->view, "alpha").replicas, 3u);
}

TEST_F(ClientTest, CacheSurvivesReopen) {
  ASSERT_TRUE(Open(cache_)->Refresh().ok());
  ASSERT_EQ(::unlink(ldif_.c_str()), 0);
  auto reopened = Open(cache_);
  Result<DirectoryState> cached = reopened->Refresh();
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  EXPECT_TRUE(cached->from_cache);
  EXPECT_EQ(cached->view.agents.size(), 2u);
}

TEST_F(ClientTest, AFailedReadNeverReplacesTheCache) {
  auto client = Open(cache_);
  ASSERT_TRUE(client->Refresh().ok());

  Write(example_ + "\nthis is not LDIF\n");
  Result<DirectoryState> state = client->Refresh();
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_TRUE(state->from_cache);
  EXPECT_NE(state->cache_reason.find(ldif_ + ":"), std::string::npos) << state->cache_reason;
  EXPECT_EQ(state->view.agents.size(), 2u);

  // A complete read replaces it; a later failure serves that read.
  Write(AgentLdif("gamma", "sparetimeSite: lab"));
  state = client->Refresh();
  ASSERT_TRUE(state.ok());
  EXPECT_FALSE(state->from_cache);
  ASSERT_EQ(state->view.agents.size(), 1u);
  ASSERT_EQ(::unlink(ldif_.c_str()), 0);
  state = client->Refresh();
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->from_cache);
  ASSERT_EQ(state->view.agents.size(), 1u);
  EXPECT_EQ(state->view.agents[0].name, "gamma");
}

TEST_F(ClientTest, BytesThatAreNotUtf8SurviveTheCache) {
  Write(AgentLdif("gamma", "sparetimeSite:: //79"));  // ff fe fd
  auto client = Open(cache_);
  ASSERT_TRUE(client->Refresh().ok());
  ASSERT_EQ(::unlink(ldif_.c_str()), 0);
  Result<DirectoryState> state = client->Refresh();
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  ASSERT_TRUE(state->from_cache);
  ASSERT_EQ(state->view.agents.size(), 1u);
  EXPECT_EQ(state->view.agents[0].site, "\xff\xfe\xfd");
}

TEST_F(ClientTest, UnreachableWithoutACacheIsUnavailable) {
  ASSERT_EQ(::unlink(ldif_.c_str()), 0);
  Result<DirectoryState> none = Open("")->Refresh();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(none.status().message().find("could not be reached"), std::string::npos);
  EXPECT_NE(none.status().message().find("no cached copy exists"), std::string::npos);
  EXPECT_NE(none.status().message().find(ldif_), std::string::npos);

  Result<DirectoryState> empty = Open(cache_)->Refresh();
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(empty.status().message().find("no cached copy exists yet in " + cache_),
            std::string::npos)
      << empty.status().message();
}

TEST_F(ClientTest, DamagedCacheIsReportedNotTrusted) {
  ASSERT_TRUE(Open(cache_)->Refresh().ok());
  {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(cache_, SqliteDb::Mode::kExisting);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE directory_cache SET contents = '{\"agents\": 7}'").ok());
  }
  ASSERT_EQ(::unlink(ldif_.c_str()), 0);
  Result<DirectoryState> state = Open(cache_)->Refresh();
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(state.status().message().find("damaged"), std::string::npos) << state.status().message();
}

TEST_F(ClientTest, RegisterAndWaitGoThroughTheBackendWithTheClientsClock) {
  auto client = Open(cache_);
  AgentRegistration self;
  self.name = "alpha";
  self.address = "192.0.2.1";
  self.port = 7401;
  ASSERT_TRUE(client->Refresh().ok());
  self.public_key = client->Refresh()->view.agents[0].public_key;
  EXPECT_FALSE(*client->WaitForChange(std::chrono::milliseconds(30)));
  clock_.wall += std::chrono::hours(1);
  ASSERT_TRUE(client->Register(self).ok());
  Result<DirectoryState> state = client->Refresh();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->view.agents[0].last_seen, clock_.wall);
  EXPECT_EQ(state->view.agents[0].address, "192.0.2.1");
  EXPECT_EQ(client->backend().Describe(), state->source);
}

}  // namespace
}  // namespace sparetime::directory
