// SystemReader basics, SensorSet + IdleDetector end to end over a fake tree
// (sensor failures become warnings, not blockers), and the same over the
// live system: every sensor this kernel has reads without warnings, and the
// real logind source answers or reports itself unavailable.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <thread>

#include "scheduler_testing.h"
#include "sparetime/scheduler/idle_detector.h"
#include "sparetime/scheduler/logind.h"
#include "sparetime/scheduler/sample.h"

namespace sparetime::scheduler {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::FakeClock;
using testing::FakeTree;
using testing::UtmpRecord;

TEST(SystemReader, ResolvesPathsUnderItsRoot) {
  FakeTree tree;
  tree.Write("/proc/b", "2");
  tree.Write("/proc/a", "1");
  const SystemReader& r = tree.reader();
  EXPECT_EQ(r.HostPath("/proc/a"), tree.HostPath("/proc/a"));
  EXPECT_EQ(SystemReader("/").HostPath("/proc/stat"), "/proc/stat");
  EXPECT_EQ(*r.ReadFile("/proc/a"), "1");
  auto missing = r.ReadFile("/proc/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find(tree.HostPath("/proc/nope")), std::string::npos);
  auto maybe = r.ReadFileIfExists("/proc/nope");
  ASSERT_TRUE(maybe.ok());
  EXPECT_FALSE(maybe->has_value());
  EXPECT_EQ(*r.ListDir("/proc"), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(r.ListDir("/sys").ok());
  auto when = testing::DefaultWall();
  tree.SetTimes("/proc/a", when - seconds(5), when);
  auto times = r.Stat("/proc/a");
  ASSERT_TRUE(times.ok());
  EXPECT_EQ(times->atime, when - seconds(5));
  EXPECT_EQ(times->mtime, when);
}

class SensorSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
    auto now = clock_.WallNow();
    tree_.Write("/proc/stat", std::string(testing::kProcStatCpuLine) + "\n" +
                                  std::string(testing::kProcStatTail));
    tree_.Write("/proc/self/stat", testing::kSelfStat);
    tree_.Write("/proc/loadavg", testing::kLoadAvg);
    tree_.Write("/proc/pressure/cpu", testing::kPressureCpu);
    tree_.Write("/proc/pressure/io", testing::kPressureIo);
    tree_.Write("/proc/pressure/memory", testing::kPressureMemory);
    tree_.Write("/proc/self/io", testing::kSelfIo);
    tree_.Write("/proc/diskstats",
                " 254       0 vda 549209 7261245 662586458 2025853 423615 74907 390901088 "
                "2812105 0 861964 5220557 84532 56 370919056 175089 82934 207508\n");
    tree_.Mkdir("/sys/block/vda/device");
    tree_.Write("/proc/net/dev",
                std::string(testing::kNetDevHeader) +
                    "  eth0: 37180495    1365    0    0    0     0          0         0    82796"
                    "    1051    0    0    0     0       0          0\n");
    tree_.Write("/run/utmp", UtmpRecord(USER_PROCESS, "pts/3", "bob"));
    tree_.Write("/dev/pts/3", "");
    tree_.SetTimes("/dev/pts/3", now - hours(1), now - hours(1));
  }
  FakeTree tree_;
  FakeClock clock_;
};

TEST_F(SensorSetTest, ReadsEverySensorAndFeedsTheDetector) {
  SensorSet sensors(tree_.reader(), clock_);
  IdleDetector detector(IdlePolicy{}, clock_);
  Sample first = sensors.Read();
  EXPECT_TRUE(first.warnings.empty());
  ASSERT_TRUE(first.user && first.cpu && first.pressure && first.disk && first.power &&
              first.network);
  EXPECT_EQ(first.Describe(clock_.WallNow()),
            (std::vector<std::string>{
                "last input on pts/3 3600 s ago", "cpu: measuring, load 0.75 on 2 CPUs",
                "pressure (some avg10): cpu 3.7%, io 0%, memory 0%", "disk: measuring",
                "no power supply (desktop on mains)", "network: measuring"}));
  EXPECT_FALSE(detector.Decide(first).idle);

  clock_.Advance(minutes(1));
  Sample second = sensors.Read();
  EXPECT_TRUE(second.disk->has_rates);
  Decision d = detector.Decide(second);
  EXPECT_TRUE(d.idle);
  EXPECT_EQ(d.reasons.front(), "no user input for 61 min (last on pts/3)");

  // Someone types on pts/3: the next check backs off at once.
  clock_.Advance(seconds(1));
  tree_.SetTimes("/dev/pts/3", clock_.WallNow() - seconds(2), clock_.WallNow() - hours(1));
  Decision busy = detector.Decide(sensors.Read());
  EXPECT_FALSE(busy.idle);
  EXPECT_EQ(busy.reasons.front(), "user active on pts/3 2 s ago");
}

TEST_F(SensorSetTest, FailingSensorsBecomeWarnings) {
  tree_.Write("/proc/stat", "cpu one two three\n");
  tree_.Write("/run/utmp", "not a utmp file");
  SensorSet sensors(tree_.reader(), clock_);
  Sample s = sensors.Read();
  EXPECT_FALSE(s.cpu.has_value());
  EXPECT_FALSE(s.user.has_value());
  EXPECT_TRUE(s.pressure.has_value());
  ASSERT_EQ(s.warnings.size(), 2u);
  EXPECT_EQ(
      s.warnings[0].rfind("user activity sensor: corruption: " + tree_.HostPath("/run/utmp"), 0),
      0u)
      << s.warnings[0];
  EXPECT_EQ(s.warnings[1].rfind(
                "cpu sensor: corruption: /proc/stat line 1: expected \"cpu\" followed by", 0),
            0u)
      << s.warnings[1];
  IdleDetector detector(IdlePolicy{}, clock_);
  EXPECT_EQ(detector.Decide(s).warnings, s.warnings);
}

TEST(SensorSetLive, ReadsThisMachineWithoutWarnings) {
  SystemReader root;
  SensorSet sensors(root, SystemClock());
  Sample first = sensors.Read();
  EXPECT_TRUE(first.warnings.empty()) << first.warnings.front();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Sample second = sensors.Read();
  EXPECT_TRUE(second.warnings.empty()) << second.warnings.front();
  ASSERT_TRUE(second.cpu.has_value());
  ASSERT_TRUE(second.cpu->busy_percent.has_value());
  EXPECT_GE(*second.cpu->busy_percent, 0.0);
  EXPECT_LE(*second.cpu->busy_percent, 100.0);
  EXPECT_GE(second.cpu->cpus, 1);
  ASSERT_TRUE(second.power.has_value());
  for (const std::string& line : second.Describe(std::chrono::system_clock::now())) {
    std::cout << "  " << line << "\n";
  }
}

TEST(LogindLive, AnswersOrIsUnavailable) {
  auto source = NewLogindIdleHintSource();
  auto hint = source->Read();
  ASSERT_TRUE(hint.ok()) << hint.status().ToString();
  if (!hint->has_value()) GTEST_SKIP() << "no system bus or logind here";
  EXPECT_LE((*hint)->since, std::chrono::system_clock::now());
}

}  // namespace
}  // namespace sparetime::scheduler
