// Retention on hand-made timelines: keep-last, daily/weekly/monthly buckets
// (newest of each bucket), local time through the offset seam, per-device
// grouping (equal-size partitions of one disk apart; ambiguous legacy keys
// kept), and the "never forget a device's every snapshot" rule.
#include "sparetime/imaging/retention.h"

#include <gtest/gtest.h>

#include <map>

namespace sparetime {
namespace {

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;
// 2026-11-20 00:00:00 UTC, a Friday (ISO week 2026-W47).
constexpr int64_t kFri = 1'795'132'800;

Snapshot Snap(const std::string& id, int64_t time, const std::string& device = "/dev/a") {
  Snapshot s;
  s.id = id;
  s.time = time;
  s.device.path = device;
  s.device.kind = "file";
  s.device.size = 1 << 20;
  return s;
}

int64_t Utc(int64_t) { return 0; }

// id -> reasons of the kept ones; forgotten ids are absent.
std::map<std::string, std::vector<std::string>> Kept(const std::vector<RetentionDecision>& ds) {
  std::map<std::string, std::vector<std::string>> out;
  for (const RetentionDecision& d : ds) {
    EXPECT_EQ(d.keep, !d.reasons.empty()) << d.snapshot.id;
    if (d.keep) out[d.snapshot.id] = d.reasons;
  }
  return out;
}

TEST(RetentionTest, KeepLastKeepsTheNewestN) {
  std::vector<Snapshot> snaps;
  for (int i = 0; i < 6; ++i) snaps.push_back(Snap("s" + std::to_string(i), kFri + i * kHour));
  auto ds = ApplyRetention(snaps, {.keep_last = 3}, Utc);
  ASSERT_EQ(ds.size(), 6u);
  EXPECT_EQ(ds.front().snapshot.id, "s5");  // newest first
  EXPECT_EQ(ds.back().snapshot.id, "s0");
  auto kept = Kept(ds);
  ASSERT_EQ(kept.size(), 3u);
  for (const char* id : {"s5", "s4", "s3"}) {
    ASSERT_TRUE(kept.contains(id)) << id;
    EXPECT_EQ(kept[id], std::vector<std::string>{"last 3"});
  }
}

TEST(RetentionTest, DailyKeepsTheNewestOfEachOfTheNewestDays) {
  // Three snapshots a day for five days.
  std::vector<Snapshot> snaps;
  for (int day = 0; day < 5; ++day) {
    for (int h : {1, 9, 17}) {
      snaps.push_back(Snap("d" + std::to_string(day) + "h" + std::to_string(h), kFri + day * kDay + h * kHour));
    }
  }
  auto kept = Kept(ApplyRetention(snaps, {.keep_daily = 3}, Utc));
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept["d4h17"], std::vector<std::string>{"daily 2026-11-24"});
  EXPECT_EQ(kept["d3h17"], std::vector<std::string>{"daily 2026-11-23"});
  EXPECT_EQ(kept["d2h17"], std::vector<std::string>{"daily 2026-11-22"});
}

TEST(RetentionTest, DaysWithoutSnapshotsDoNotCount) {
  // Snapshots on days 0, 10 and 20: keep_daily 2 keeps days 20 and 10.
  std::vector<Snapshot> snaps = {Snap("a", kFri), Snap("b", kFri + 10 * kDay),
                                 Snap("c", kFri + 20 * kDay)};
  auto kept = Kept(ApplyRetention(snaps, {.keep_daily = 2}, Utc));
  EXPECT_EQ(kept.size(), 2u);
  EXPECT_TRUE(kept.contains("c"));
  EXPECT_TRUE(kept.contains("b"));
}

TEST(RetentionTest, WeeklyUsesIsoWeeksAndMonthlyCalendarMonths) {
  // Sunday 2026-11-22 and Monday 2026-11-23 are in different ISO weeks;
  // Monday 2026-11-30 and Tuesday 2026-12-01 share week 49 but not the month.
  std::vector<Snapshot> snaps = {Snap("sun", kFri + 2 * kDay), Snap("mon", kFri + 3 * kDay),
                                 Snap("mon30", kFri + 10 * kDay), Snap("tue1", kFri + 11 * kDay)};
  auto kept = Kept(ApplyRetention(snaps, {.keep_weekly = 3, .keep_monthly = 2}, Utc));
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept["tue1"], (std::vector<std::string>{"weekly 2026-W49", "monthly 2026-12"}));
  EXPECT_EQ(kept["mon30"], std::vector<std::string>{"monthly 2026-11"});
  EXPECT_EQ(kept["mon"], std::vector<std::string>{"weekly 2026-W48"});
  EXPECT_EQ(kept["sun"], std::vector<std::string>{"weekly 2026-W47"});
  // One fewer week: "sun" goes.
  EXPECT_FALSE(Kept(ApplyRetention(snaps, {.keep_weekly = 2, .keep_monthly = 2}, Utc)).contains("sun"));
}

TEST(RetentionTest, MonthlyKeepsTheNewestOfTheMonth) {
  std::vector<Snapshot> snaps = {Snap("nov22", kFri + 2 * kDay), Snap("nov30", kFri + 10 * kDay),
                                 Snap("dec1", kFri + 11 * kDay)};
  auto kept = Kept(ApplyRetention(snaps, {.keep_monthly = 2}, Utc));
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept["dec1"], std::vector<std::string>{"monthly 2026-12"});
  EXPECT_EQ(kept["nov30"], std::vector<std::string>{"monthly 2026-11"});
}

TEST(RetentionTest, IsoWeekOfEarlyJanuaryBelongsToThePreviousYear) {
  // Friday 2027-01-01 is in ISO week 2026-W53.
  const int64_t jan1 = kFri + 42 * kDay;
  auto kept = Kept(ApplyRetention(std::vector<Snapshot>{Snap("ny", jan1)}, {.keep_weekly = 1}, Utc));
  EXPECT_EQ(kept["ny"], std::vector<std::string>{"weekly 2026-W53"});
}

TEST(RetentionTest, ReasonsAccumulateAcrossRules) {
  std::vector<Snapshot> snaps = {Snap("old", kFri), Snap("new", kFri + kDay)};
  auto kept = Kept(ApplyRetention(snaps, {.keep_last = 1, .keep_daily = 2, .keep_monthly = 1}, Utc));
  EXPECT_EQ(kept["new"], (std::vector<std::string>{"last 1", "daily 2026-11-21", "monthly 2026-11"}));
  EXPECT_EQ(kept["old"], std::vector<std::string>{"daily 2026-11-20"});
}

TEST(RetentionTest, LocalTimeDecidesTheDay) {
  // 23:30 UTC and 00:30 UTC the next day: two UTC days, but in UTC-2 both
  // are on the same local day, so keep_daily 5 keeps only the newer.
  std::vector<Snapshot> snaps = {Snap("late", kFri + 23 * kHour + 1800),
                                 Snap("early", kFri + kDay + 1800)};
  EXPECT_EQ(Kept(ApplyRetention(snaps, {.keep_daily = 5}, Utc)).size(), 2u);
  auto kept = Kept(ApplyRetention(snaps, {.keep_daily = 5}, [](int64_t) { return -2 * kHour; }));
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept["early"], std::vector<std::string>{"daily 2026-11-20"});
}

TEST(RetentionTest, DevicesAreDecidedSeparately) {
  std::vector<Snapshot> snaps = {Snap("a1", kFri, "/dev/a"), Snap("a2", kFri + kHour, "/dev/a"),
                                 Snap("b1", kFri + 2 * kHour, "/dev/b"),
                                 Snap("b2", kFri + 3 * kHour, "/dev/b")};
  auto kept = Kept(ApplyRetention(snaps, {.keep_last = 1}, Utc));
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_TRUE(kept.contains("a2"));
  EXPECT_TRUE(kept.contains("b2"));
}

TEST(RetentionTest, AllZeroKeepsTheNewestOfEveryDevice) {
  std::vector<Snapshot> snaps = {Snap("a1", kFri, "/dev/a"), Snap("a2", kFri + kHour, "/dev/a"),
                                 Snap("b1", kFri + 2 * kHour, "/dev/b")};
  auto kept = Kept(ApplyRetention(snaps, {}, Utc));
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept["a2"], std::vector<std::string>{"newest of its device (every keep count is 0)"});
  EXPECT_TRUE(kept.contains("b1"));
}

// Partition `n` of one disk (same WWID, same size), as OpenBlockDevice sees it.
Snapshot Part(const std::string& id, int64_t time, uint32_t n) {
  Snapshot s = Snap(id, time, "/dev/sda" + std::to_string(n));
  s.device.kind = "block";
  s.device.wwid = "naa.5000c500a1b2c3d4";
  s.device.partition = n;
  s.device.start = n * (uint64_t{1} << 20);
  return s;
}

TEST(RetentionTest, EqualSizePartitionsOfOneDiskAreSeparateDevices) {
  std::vector<Snapshot> snaps = {Part("p1-old", kFri, 1), Part("p2-old", kFri + kHour, 2),
                                 Part("p1-new", kFri + 2 * kHour, 1),
                                 Part("p2-new", kFri + 3 * kHour, 2)};
  auto kept = Kept(ApplyRetention(snaps, {.keep_last = 1}, Utc));
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept["p1-new"], std::vector<std::string>{"last 1"});
  EXPECT_EQ(kept["p2-new"], std::vector<std::string>{"last 1"});
}

TEST(RetentionTest, AmbiguousLegacySnapshotsAreAllKeptAndCountForNothing) {
  // Migrated from schema 1: sda1 and sda2 shared "wwid:W:size=S" and the disk
  // is gone, so the catalog cannot tell them apart.
  auto legacy = [](const std::string& id, int64_t time, uint32_t n, bool ambiguous) {
    Snapshot s = Part(id, time, n);
    s.device.partition = 0;
    s.device.start = 0;
    s.device.legacy_key = "wwid:naa.5000c500a1b2c3d4:size=1048576";
    s.device.legacy_ambiguous = ambiguous;
    return s;
  };
  std::vector<Snapshot> snaps = {legacy("old1", kFri, 1, true), legacy("old2", kFri + kHour, 2, true),
                                 legacy("solo", kFri + 2 * kHour, 3, false),
                                 Part("new-a", kFri + 3 * kHour, 1),
                                 Part("new-b", kFri + 4 * kHour, 1)};
  // A fresh whole-disk backup with the legacy key's value joins "solo"'s group.
  Snapshot disk = Snap("disk", kFri + 5 * kHour, "/dev/sda");
  disk.device.kind = "block";
  disk.device.wwid = "naa.5000c500a1b2c3d4";
  snaps.push_back(disk);
  auto kept = Kept(ApplyRetention(snaps, {.keep_last = 1}, Utc));
  ASSERT_EQ(kept.size(), 4u);
  ASSERT_EQ(kept["old1"].size(), 1u);
  EXPECT_NE(kept["old1"][0].find("ambiguous device"), std::string::npos) << kept["old1"][0];
  EXPECT_NE(kept["old1"][0].find("sparetime forget"), std::string::npos) << kept["old1"][0];
  EXPECT_EQ(kept["old2"], kept["old1"]);
  EXPECT_EQ(kept["new-b"], std::vector<std::string>{"last 1"});
  EXPECT_EQ(kept["disk"], std::vector<std::string>{"last 1"});
  EXPECT_FALSE(kept.contains("solo")) << "same key as the disk's fresh backup: one group";
  EXPECT_FALSE(kept.contains("new-a"));
}

TEST(RetentionTest, EmptyInputAndPolicyText) {
  EXPECT_TRUE(ApplyRetention({}, {.keep_last = 1}, Utc).empty());
  RetentionPolicy p{3, 7, 4, 6};
  EXPECT_EQ(p.ToString(), "last 3, daily 7, weekly 4, monthly 6");
}

}  // namespace
}  // namespace sparetime
