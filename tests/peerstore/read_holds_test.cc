// ReadHolds: holds set, renewed, dropped, lapsed (fake clock), capped,
// limited per owner, kept across a restart, and a damaged file refused with
// what to do.
#include "sparetime/peerstore/read_holds.h"

#include <gtest/gtest.h>

#include <fstream>

#include "sparetime/base/fd.h"
#include "testutil/fake_clock.h"
#include "testutil/testutil.h"

namespace sparetime::peerstore {
namespace {

using std::chrono::seconds;

class ReadHoldsTest : public ::testing::Test {
 protected:
  std::unique_ptr<ReadHolds> Open() {
    auto h = ReadHolds::Open(path_, clock_);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return h.ok() ? std::move(*h) : nullptr;
  }
  int64_t Now() const { return ToUnixSeconds(clock_.WallNow()); }

  testing::TempDir dir_;
  std::string path_ = dir_ / "read-holds";
  testing::FakeClock clock_;
};

TEST_F(ReadHoldsTest, AHoldDefersReleasesUntilDroppedOrLapsed) {
  auto holds = Open();
  ASSERT_TRUE(holds);
  EXPECT_TRUE(holds->CheckRelease("alpha").ok());
  ASSERT_TRUE(holds->Hold("Alpha", "epsilon", "3f9a", 120).ok());
  Status s = holds->CheckRelease("alpha");
  EXPECT_EQ(s.code(), ErrorCode::kUnavailable);
  // FakeClock's wall time is 2024-06-03 12:00:00 UTC.
  EXPECT_NE(s.message().find("deferred: snapshot 3f9a of alpha is mounted by epsilon until "
                             "2024-06-03 12:02:00 UTC"),
            std::string::npos) << s.message();
  EXPECT_TRUE(holds->CheckRelease("beta").ok());  // only alpha is held
  // Renewed 100 s later: good for 120 s from then.
  clock_.Advance(seconds(100));
  ASSERT_TRUE(holds->Hold("alpha", "epsilon", "3f9a", 120).ok());
  ASSERT_EQ(holds->Live("alpha").size(), 1u);
  EXPECT_EQ(holds->Live("alpha")[0].expires, Now() + 120);
  clock_.Advance(seconds(119));
  EXPECT_FALSE(holds->CheckRelease("alpha").ok());
  clock_.Advance(seconds(1));
  EXPECT_TRUE(holds->CheckRelease("alpha").ok());  // lapsed
  EXPECT_TRUE(holds->Live("").empty());

  ASSERT_TRUE(holds->Hold("alpha", "epsilon", "3f9a", 120).ok());
  ASSERT_TRUE(holds->Hold("alpha", "zeta", "77", 30).ok());
  s = holds->CheckRelease("alpha");
  EXPECT_NE(s.message().find("mounted by epsilon"), std::string::npos) << s.message();  // the longest
  EXPECT_NE(s.message().find("(2 read holds in all)"), std::string::npos) << s.message();
  ASSERT_TRUE(holds->Hold("alpha", "epsilon", "3f9a", 0).ok());  // dropped
  ASSERT_EQ(holds->Live("alpha").size(), 1u);
  EXPECT_EQ(holds->Live("alpha")[0].holder, "zeta");
  ASSERT_TRUE(holds->Hold("alpha", "zeta", "77", 0).ok());
  EXPECT_TRUE(holds->CheckRelease("alpha").ok());
}

TEST_F(ReadHoldsTest, HoldsAreCappedLimitedAndChecked) {
  auto holds = Open();
  ASSERT_TRUE(holds);
  ASSERT_TRUE(holds->Hold("alpha", "epsilon", "s", 1'000'000).ok());
  EXPECT_EQ(holds->Live("alpha")[0].expires, Now() + ReadHolds::kMaxHoldSeconds);
  for (size_t i = 1; i < ReadHolds::kMaxHoldsPerOwner; ++i) {
    ASSERT_TRUE(holds->Hold("alpha", "epsilon", "s" + std::to_string(i), 60).ok());
  }
  Status full = holds->Hold("alpha", "epsilon", "one-more", 60);
  EXPECT_EQ(full.code(), ErrorCode::kNoSpace);
  EXPECT_NE(full.message().find("already keeps 64 read holds on the backups of alpha"),
            std::string::npos) << full.message();
  EXPECT_TRUE(holds->Hold("alpha", "epsilon", "s1", 90).ok());  // a renewal is no new hold
  EXPECT_TRUE(holds->Hold("beta", "epsilon", "one-more", 60).ok());  // another owner's limit
  EXPECT_EQ(holds->Hold("../x", "epsilon", "s", 60).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(holds->Hold("alpha", "epsilon", "a b", 60).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(holds->Hold("alpha", "epsilon", std::string(65, 'a'), 60).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(holds->Live("").size(), ReadHolds::kMaxHoldsPerOwner + 1);
}

TEST_F(ReadHoldsTest, HoldsSurviveARestartAndADamagedFileIsRefusedWithWhatToDo) {
  {
    auto holds = Open();
    ASSERT_TRUE(holds);
    ASSERT_TRUE(holds->Hold("alpha", "epsilon", "3f9a", 120).ok());
    ASSERT_TRUE(holds->Hold("beta", "epsilon", "1234", 10).ok());
  }
  EXPECT_EQ(ReadFileToString(path_).value(),
            "alpha epsilon 3f9a " + std::to_string(Now() + 120) + "\n" +
            "beta epsilon 1234 " + std::to_string(Now() + 10) + "\n");
  auto again = Open();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->Live("").size(), 2u);
  EXPECT_EQ(again->CheckRelease("alpha").code(), ErrorCode::kUnavailable);

  std::ofstream(path_, std::ios::app) << "gamma epsilon\n";
  auto damaged = ReadHolds::Open(path_, clock_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(damaged.status().message().find("read holds file " + path_ + " is damaged at line 3"),
            std::string::npos) << damaged.status().message();
  EXPECT_NE(damaged.status().message().find("delete it and restart sparetimed"), std::string::npos);
}

}  // namespace
}  // namespace sparetime::peerstore
