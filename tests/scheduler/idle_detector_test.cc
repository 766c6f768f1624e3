// IdleDetector: the decision rule with a fake clock and hand-built samples —
// thresholds, hysteresis (settle, load grace, resume delay), time windows
// (past midnight, weekends), AC-only, the reasons text and the re-check
// cadence. TZ is UTC so windows are evaluated in a known zone.
#include "sparetime/scheduler/idle_detector.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include "scheduler_testing.h"

namespace sparetime::scheduler {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::FakeClock;
using testing::UtcTime;

TimeWindow Window(const std::string& text) {
  auto w = ParseTimeWindow(text);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  return w.ok() ? *w : TimeWindow{};
}

bool Has(const Decision& d, const std::string& reason) {
  for (const std::string& r : d.reasons) {
    if (r == reason) return true;
  }
  return false;
}

std::string Reasons(const Decision& d) {
  std::string s;
  for (const std::string& r : d.reasons) s += "[" + r + "] ";
  return s;
}

DiskRate Disk(const std::string& name, double busy) {
  DiskRate d;
  d.name = name;
  d.busy_percent = busy;
  return d;
}

PowerSample Power(bool on_ac, std::optional<int> battery, int supplies) {
  PowerSample p;
  p.on_ac = on_ac;
  p.battery_percent = battery;
  p.supplies = supplies;
  return p;
}

class IdleDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
  // A box nobody touched for 20 min, on AC, with every load sensor quiet.
  Sample Quiet() const {
    Sample s;
    UserActivitySample user;
    user.last_input = clock_.WallNow() - minutes(20);
    user.source = "pts/3";
    s.user = user;
    s.cpu.emplace();
    s.cpu->busy_percent = 5;
    s.cpu->own_percent = 30;
    s.cpu->cpus = 4;
    PressureSample p;
    p.cpu.emplace().some_avg10 = 1;
    p.io.emplace().some_avg10 = 2;
    p.memory.emplace().some_avg10 = 0;
    s.pressure = p;
    s.disk.emplace().has_rates = true;
    s.disk->disks.push_back(Disk("vda", 3));
    s.power = Power(true, std::nullopt, 0);
    s.network.emplace().has_rates = true;
    s.network->bytes_per_sec = 2e6;
    s.network->busiest_interface = "eth0";
    return s;
  }
  Sample Loud(double cpu) const {
    Sample s = Quiet();
    s.cpu->busy_percent = cpu;
    return s;
  }
  // Makes `d` idle: quiet samples until settle has passed.
  void BecomeIdle(IdleDetector* d) {
    ASSERT_FALSE(d->Decide(Quiet()).idle);
    clock_.Advance(d->policy().settle);
    Decision idle = d->Decide(Quiet());
    ASSERT_TRUE(idle.idle) << Reasons(idle);
  }
  FakeClock clock_;
};

TEST_F(IdleDetectorTest, DefaultsAreValidAndModelledOnCondorAndBoinc) {
  IdlePolicy p;
  EXPECT_TRUE(p.Validate().ok());
  EXPECT_EQ(p.idle_after, minutes(15));
  EXPECT_EQ(p.max_cpu_percent, 10);
  EXPECT_TRUE(p.ac_only);
  EXPECT_EQ(p.resume_delay, minutes(5));
  p.max_io_pressure_percent = 140;
  Status st = p.Validate();
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("max_io_pressure_percent"), std::string::npos) << st.message();
  p = IdlePolicy{};
  p.check_interval_idle = seconds(0);
  EXPECT_NE(p.Validate().message().find("check_interval_idle"), std::string::npos);
}

TEST_F(IdleDetectorTest, AQuietBoxBecomesIdleOnceTheLoadHasSettled) {
  IdleDetector d(IdlePolicy{}, clock_);
  auto t0 = clock_.MonoNow();
  Decision first = d.Decide(Quiet());
  EXPECT_FALSE(first.idle);
  EXPECT_EQ(first.reasons, std::vector<std::string>{"load quiet for 0 s of the 60 s required"});
  EXPECT_EQ(first.next_check, t0 + seconds(30));  // re-checked, not polled

  clock_.Advance(seconds(30));
  Decision second = d.Decide(Quiet());
  EXPECT_FALSE(second.idle);
  EXPECT_EQ(second.next_check, t0 + seconds(60));  // exactly when settle completes

  clock_.Advance(seconds(30));
  Decision idle = d.Decide(Quiet());
  EXPECT_TRUE(idle.idle);
  EXPECT_EQ(idle.reasons,
            (std::vector<std::string>{
                "no user input for 20 min (last on pts/3)", "no power supply (desktop on mains)",
                "quiet: cpu 5%, io pressure 2%, memory pressure 0%, disk vda busy 3%"}))
      << Reasons(idle);
  EXPECT_EQ(idle.next_check, clock_.MonoNow() + seconds(1));
}

TEST_F(IdleDetectorTest, EachThresholdBlocksWithItsReason) {
  IdlePolicy policy;
  policy.max_network_bytes_per_sec = 1e6;
  IdleDetector d(policy, clock_);
  Sample s = Quiet();
  s.cpu->busy_percent = 43;
  s.pressure->io->some_avg10 = 34;
  s.pressure->memory->some_avg10 = 12.5;
  s.pressure->cpu->some_avg10 = 90;  // not checked by default
  s.disk->disks.push_back(Disk("sdb", 62));
  s.network->bytes_per_sec = 3.2e6;
  Decision dec = d.Decide(s);
  EXPECT_FALSE(dec.idle);
  EXPECT_EQ(dec.reasons, (std::vector<std::string>{
                             "cpu 43% > 10%", "io pressure 34% > 10%", "memory pressure 12% > 10%",
                             "disk sdb busy 62% > 20%", "network (eth0) 3.2 MB/s > 1.0 MB/s"}))
      << Reasons(dec);
  EXPECT_EQ(dec.next_check, clock_.MonoNow() + seconds(30));
}

TEST_F(IdleDetectorTest, SensorsWithoutReadingsDoNotBlock) {
  IdleDetector d(IdlePolicy{}, clock_);
  Sample empty;
  empty.warnings.push_back("cpu sensor: corruption: /proc/stat line 1: ...");
  Decision first = d.Decide(empty);
  EXPECT_EQ(first.warnings, empty.warnings);
  clock_.Advance(minutes(1));
  Decision idle = d.Decide(empty);
  EXPECT_TRUE(idle.idle) << Reasons(idle);
  EXPECT_EQ(idle.reasons, std::vector<std::string>{"no sensor reports activity"});
}

TEST_F(IdleDetectorTest, UserActivityBlocksUntilIdleAfterAndBacksOffAtOnce) {
  IdlePolicy policy;
  policy.idle_after = minutes(3);
  IdleDetector d(policy, clock_);
  BecomeIdle(&d);

  Sample typed = Quiet();
  typed.user->last_input = clock_.WallNow() - seconds(12);
  Decision busy = d.Decide(typed);  // no grace for people
  EXPECT_FALSE(busy.idle);
  EXPECT_TRUE(Has(busy, "user active on pts/3 12 s ago")) << Reasons(busy);
  EXPECT_TRUE(Has(busy, "backed off 0 s ago, resuming 5 min after that at the earliest"))
      << Reasons(busy);
  // The resume delay (5 min) is the latest condition; wake `settle` before it.
  EXPECT_EQ(busy.next_check, clock_.MonoNow() + minutes(4));
}

TEST_F(IdleDetectorTest, WaitsForTheUserThenIdlesWithoutExtraDelay) {
  IdlePolicy policy;
  policy.idle_after = minutes(3);
  IdleDetector d(policy, clock_);
  Sample s = Quiet();
  s.user->last_input = clock_.WallNow() - seconds(12);
  Decision busy = d.Decide(s);
  EXPECT_EQ(busy.reasons.front(), "user active on pts/3 12 s ago");
  // 168 s until the user counts as away: sleep until settle before that.
  EXPECT_EQ(busy.next_check, clock_.MonoNow() + seconds(108));
  clock_.Advance(seconds(108));
  Decision still = d.Decide(s);
  EXPECT_FALSE(still.idle);
  EXPECT_EQ(still.next_check, clock_.MonoNow() + seconds(30));
  clock_.Advance(seconds(60));
  Decision idle = d.Decide(s);
  EXPECT_TRUE(idle.idle) << Reasons(idle);
  EXPECT_EQ(idle.reasons.front(), "no user input for 3 min (last on pts/3)");
}

TEST_F(IdleDetectorTest, FlappingLoadDoesNotFlapTheDecision) {
  IdleDetector d(IdlePolicy{}, clock_);
  BecomeIdle(&d);
  // Idle: spikes shorter than load_grace (30 s) are tolerated, with a reason.
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(seconds(5));
    Decision dec = d.Decide(i % 4 == 0 ? Quiet() : Loud(60));
    ASSERT_TRUE(dec.idle) << "sample " << i << ": " << Reasons(dec);
    if (i % 4 == 1) {
      EXPECT_TRUE(Has(dec, "cpu 60% > 10% for 0 s, backing off after 30 s")) << Reasons(dec);
    }
  }
  // Busy: quiet gaps shorter than settle (60 s) never make it idle.
  IdleDetector busy(IdlePolicy{}, clock_);
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(seconds(20));
    Decision dec = busy.Decide(i % 3 == 2 ? Loud(60) : Quiet());
    ASSERT_FALSE(dec.idle) << "sample " << i;
  }
}

TEST_F(IdleDetectorTest, SustainedLoadBacksOffAfterGraceThenWaitsTheResumeDelay) {
  IdleDetector d(IdlePolicy{}, clock_);
  BecomeIdle(&d);
  clock_.Advance(seconds(1));
  EXPECT_TRUE(d.Decide(Loud(80)).idle);
  clock_.Advance(seconds(29));
  EXPECT_TRUE(d.Decide(Loud(80)).idle);  // 29 s of load: still within the grace
  clock_.Advance(seconds(1));
  Decision off = d.Decide(Loud(80));
  EXPECT_FALSE(off.idle);
  EXPECT_TRUE(Has(off, "cpu 80% > 10%")) << Reasons(off);
  auto backed_off = clock_.MonoNow();

  // Quiet again right away: settle (60 s) passes long before the resume delay.
  clock_.Advance(seconds(1));
  Decision waiting = d.Decide(Quiet());
  EXPECT_FALSE(waiting.idle);
  EXPECT_TRUE(Has(waiting, "backed off 1 s ago, resuming 5 min after that at the earliest"))
      << Reasons(waiting);
  EXPECT_EQ(waiting.next_check, backed_off + minutes(4));
  clock_.Advance(waiting.next_check - clock_.MonoNow());
  Decision almost = d.Decide(Quiet());
  EXPECT_FALSE(almost.idle);
  EXPECT_EQ(almost.next_check, backed_off + minutes(4) + seconds(30));
  clock_.Advance(seconds(30));
  EXPECT_FALSE(d.Decide(Quiet()).idle);
  clock_.Advance(seconds(30));
  EXPECT_EQ(clock_.MonoNow(), backed_off + minutes(5));
  EXPECT_TRUE(d.Decide(Quiet()).idle);
}

TEST_F(IdleDetectorTest, AcOnly) {
  Sample battery = Quiet();
  battery.power = Power(false, 74, 2);
  IdleDetector strict(IdlePolicy{}, clock_);
  Decision d = strict.Decide(battery);
  EXPECT_EQ(d.reasons.front(), "on battery (74%)");
  EXPECT_EQ(d.next_check, clock_.MonoNow() + seconds(30));  // cannot predict the charger

  IdlePolicy relaxed;
  relaxed.ac_only = false;
  IdleDetector lenient(relaxed, clock_);
  EXPECT_FALSE(lenient.Decide(battery).idle);
  clock_.Advance(minutes(1));
  Decision ok = lenient.Decide(battery);
  EXPECT_TRUE(ok.idle);
  EXPECT_TRUE(Has(ok, "on battery (74%), allowed by policy")) << Reasons(ok);

  // Unplugged while idle: back off at once.
  Sample ac = Quiet();
  IdleDetector d2(IdlePolicy{}, clock_);
  EXPECT_FALSE(d2.Decide(ac).idle);
  clock_.Advance(minutes(1));
  EXPECT_TRUE(d2.Decide(ac).idle);
  clock_.Advance(seconds(1));
  EXPECT_FALSE(d2.Decide(battery).idle);
}

TEST_F(IdleDetectorTest, WindowsIncludingPastMidnight) {
  IdlePolicy policy;
  policy.windows = {Window("Mon-Fri 19:00-07:00"), Window("Sat-Sun 10:00-12:00")};
  struct Case {
    int day, hour, minute;  // June 2024: the 3rd is a Monday
    bool inside;
  } cases[] = {
      {3, 12, 0, false},  // Monday noon
      {3, 18, 59, false}, {3, 19, 0, true},
      {4, 3, 0, true},  // Tuesday 03:00, the night from Monday
      {4, 6, 59, true},   {4, 7, 0, false},
      {8, 3, 0, true},  // Saturday 03:00, the night from Friday
      {8, 9, 0, false},   {8, 11, 0, true},
      {9, 23, 0, false},  // Sunday night: no window
      {3, 3, 0, false},   // Monday 03:00: Sunday had no night window
  };
  for (const Case& c : cases) {
    // Decide a minute before (to start the settle period) and at the time.
    FakeClock clock(UtcTime(2024, 6, c.day, c.hour, c.minute) - minutes(1));
    IdleDetector d(policy, clock);
    Sample s = Quiet();
    s.user->last_input = clock.WallNow() - hours(1);
    d.Decide(s);
    clock.Advance(minutes(1));
    s.user->last_input = clock.WallNow() - hours(1);
    Decision dec = d.Decide(s);
    EXPECT_EQ(dec.idle, c.inside) << "June " << c.day << " " << c.hour << ":" << c.minute << " "
                                  << Reasons(dec);
    if (!c.inside) {
      EXPECT_TRUE(Has(dec, "outside windows Mon-Fri 19:00-07:00, Sat-Sun 10:00-12:00"))
          << Reasons(dec);
    }
  }
}

TEST_F(IdleDetectorTest, OutsideAWindowSleepsUntilShortlyBeforeItOpens) {
  IdlePolicy policy;
  policy.windows = {Window("Mon-Fri 19:00-07:00")};
  FakeClock clock(UtcTime(2024, 6, 3, 18, 55));
  IdleDetector d(policy, clock);
  Sample s = Quiet();
  auto refresh = [&] { s.user->last_input = clock.WallNow() - hours(1); };
  refresh();
  Decision dec = d.Decide(s);
  EXPECT_EQ(dec.reasons.front(), "outside window Mon-Fri 19:00-07:00");
  EXPECT_EQ(dec.next_check, clock.MonoNow() + minutes(4));  // 19:00 minus settle
  int checks = 0;
  while (!dec.idle && checks < 10) {
    clock.Advance(dec.next_check - clock.MonoNow());
    refresh();
    dec = d.Decide(s);
    ++checks;
  }
  EXPECT_TRUE(dec.idle);
  EXPECT_EQ(clock.WallNow(), UtcTime(2024, 6, 3, 19, 0));
  EXPECT_TRUE(Has(dec, "inside window Mon-Fri 19:00-07:00")) << Reasons(dec);
  EXPECT_LE(checks, 4);

  // Far from the window: at most 10 min between checks.
  FakeClock noon(UtcTime(2024, 6, 3, 12, 0));
  IdleDetector d2(policy, noon);
  EXPECT_EQ(d2.Decide(s).next_check, noon.MonoNow() + minutes(10));
}

TEST_F(IdleDetectorTest, LeavingTheWindowBacksOffAtOnce) {
  IdlePolicy policy;
  policy.windows = {Window("Mon-Fri 19:00-07:00")};
  FakeClock clock(UtcTime(2024, 6, 4, 6, 58));
  IdleDetector d(policy, clock);
  Sample s = Quiet();
  s.user->last_input = clock.WallNow() - hours(1);
  d.Decide(s);
  clock.Advance(minutes(1));
  ASSERT_TRUE(d.Decide(s).idle);
  clock.Advance(minutes(1));
  Decision out = d.Decide(s);
  EXPECT_FALSE(out.idle);
  EXPECT_EQ(out.reasons.front(), "outside window Mon-Fri 19:00-07:00");
}

}  // namespace
}  // namespace sparetime::scheduler
