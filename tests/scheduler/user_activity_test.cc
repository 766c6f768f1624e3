// UserActivitySensor: utmp + terminal access times (as `w`), input device
// times, logind's hint, and a real pseudo-terminal whose access time moves
// when someone types into it.
#include "sparetime/scheduler/user_activity.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "scheduler_testing.h"
#include "sparetime/scheduler/idle_detector.h"

namespace sparetime::scheduler {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::FakeClock;
using testing::FakeTree;
using testing::UtmpRecord;

class FixedIdleHint final : public IdleHintSource {
 public:
  explicit FixedIdleHint(std::optional<IdleHint> hint) : hint_(hint) {}
  Result<std::optional<IdleHint>> Read() override { return hint_; }

 private:
  std::optional<IdleHint> hint_;
};

class UserActivityTest : public ::testing::Test {
 protected:
  UserActivitySample Read(UserActivityOptions options = {}) {
    auto s = UserActivitySensor(tree_.reader(), clock_, std::move(options)).Read();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : UserActivitySample{};
  }
  FakeTree tree_;
  FakeClock clock_;
};

TEST_F(UserActivityTest, NewestTerminalOfALoggedInUserWins) {
  auto now = clock_.WallNow();
  tree_.Write("/run/utmp", UtmpRecord(BOOT_TIME, "~", "reboot") +
                               UtmpRecord(USER_PROCESS, "tty1", "alice") +
                               UtmpRecord(USER_PROCESS, "pts/3", "bob") +
                               UtmpRecord(LOGIN_PROCESS, "tty2", "LOGIN") +
                               UtmpRecord(DEAD_PROCESS, "pts/4", ""));
  for (const char* tty : {"/dev/tty1", "/dev/pts/3", "/dev/tty2", "/dev/pts/4"})
    tree_.Write(tty, "");
  tree_.SetTimes("/dev/tty1", now - hours(1), now - seconds(1));  // output does not count
  tree_.SetTimes("/dev/pts/3", now - seconds(12), now - hours(2));
  tree_.SetTimes("/dev/tty2", now, now);   // a getty, not a user
  tree_.SetTimes("/dev/pts/4", now, now);  // logged out
  UserActivitySample s = Read();
  ASSERT_TRUE(s.last_input.has_value());
  EXPECT_EQ(*s.last_input, now - seconds(12));
  EXPECT_EQ(s.source, "pts/3");
  EXPECT_EQ(s.sessions, 2);
  EXPECT_EQ(s.Describe(now), "last input on pts/3 12 s ago");
}

TEST_F(UserActivityTest, NothingToReadMeansNoUser) {
  UserActivitySample s = Read();
  EXPECT_FALSE(s.last_input.has_value());
  EXPECT_EQ(s.Describe(clock_.WallNow()), "no user sessions or input devices");
}

TEST_F(UserActivityTest, StaleAndHostileUtmpLinesAreSkipped) {
  tree_.Write("/run/utmp", UtmpRecord(USER_PROCESS, ":0", "carol") +
                               UtmpRecord(USER_PROCESS, "../run/utmp", "mallory") +
                               UtmpRecord(USER_PROCESS, "pts/9", "gone"));  // no /dev/pts/9
  UserActivitySample s = Read();
  EXPECT_FALSE(s.last_input.has_value());
  EXPECT_EQ(s.sessions, 1);
}

TEST_F(UserActivityTest, GarbageUtmpIsAClearError) {
  tree_.Write("/run/utmp", UtmpRecord(USER_PROCESS, "pts/1", "bob") + "trailing junk");
  auto s = UserActivitySensor(tree_.reader(), clock_).Read();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(s.error().message().find("/run/utmp is 397 bytes"), std::string::npos)
      << s.error().message();
  EXPECT_NE(s.error().message().find("384-byte utmp records"), std::string::npos);
}

TEST_F(UserActivityTest, InputDeviceTimes) {
  auto now = clock_.WallNow();
  tree_.Write("/dev/input/event0", "");
  tree_.Write("/dev/input/event1", "");
  tree_.Write("/dev/input/mice", "");
  tree_.SetTimes("/dev/input/event0", now - hours(3), now - hours(3));
  tree_.SetTimes("/dev/input/event1", now - hours(3), now - seconds(40));
  tree_.SetTimes("/dev/input/mice", now, now);  // not an event device
  UserActivitySample s = Read();
  EXPECT_EQ(s.input_devices, 2);
  EXPECT_EQ(s.source, "input/event1");
  EXPECT_EQ(*s.last_input, now - seconds(40));
}

TEST_F(UserActivityTest, LogindHint) {
  auto now = clock_.WallNow();
  tree_.Write("/run/utmp", UtmpRecord(USER_PROCESS, "pts/1", "bob"));
  tree_.Write("/dev/pts/1", "");
  tree_.SetTimes("/dev/pts/1", now - hours(1), now - hours(1));

  FixedIdleHint active(IdleHint{false, now - hours(5)});
  UserActivitySample s = Read({.logind = &active});
  EXPECT_TRUE(s.logind);
  EXPECT_EQ(s.source, "logind");
  EXPECT_EQ(*s.last_input, now);  // not idle: in use right now

  FixedIdleHint idle(IdleHint{true, now - minutes(20)});
  s = Read({.logind = &idle});
  EXPECT_EQ(s.source, "logind");
  EXPECT_EQ(*s.last_input, now - minutes(20));

  FixedIdleHint never(IdleHint{true, std::chrono::system_clock::time_point()});
  s = Read({.logind = &never});
  EXPECT_EQ(s.source, "pts/1");

  FixedIdleHint unreachable(std::nullopt);
  s = Read({.logind = &unreachable});
  EXPECT_FALSE(s.logind);
  EXPECT_EQ(s.source, "pts/1");
}

// A real pseudo-terminal: typing into it (the slave side reading what was
// written to the master) moves its access time, which the sensor sees
// through a utmp entry naming its line.
TEST(UserActivityPty, TypingIntoARealPtyMakesTheUserActive) {
  Fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) GTEST_SKIP() << "posix_openpt: " << std::strerror(errno);
  ASSERT_EQ(::grantpt(master.get()), 0);
  ASSERT_EQ(::unlockpt(master.get()), 0);
  std::string slave_path = ::ptsname(master.get());
  ASSERT_EQ(slave_path.rfind("/dev/", 0), 0u) << slave_path;
  auto slave = OpenFile(slave_path, O_RDWR | O_NOCTTY);
  ASSERT_TRUE(slave.ok()) << slave.status().ToString();

  FakeTree tree;
  tree.Symlink("/dev/pts", "/dev/pts");
  tree.Write("/run/utmp", UtmpRecord(USER_PROCESS, slave_path.substr(5), "tester"));
  const Clock& clock = SystemClock();
  auto hour_ago = clock.WallNow() - hours(1);
  FakeTree::SetHostTimes(slave_path, hour_ago, hour_ago);

  UserActivitySensor sensor(tree.reader(), clock);
  IdlePolicy policy;
  policy.idle_after = minutes(15);
  IdleDetector detector(policy, clock);

  auto before = sensor.Read();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  ASSERT_TRUE(before->last_input.has_value());
  EXPECT_GE(clock.WallNow() - *before->last_input, minutes(59));
  Sample quiet;
  quiet.user = *before;
  for (const std::string& r : detector.Decide(quiet).reasons)
    EXPECT_EQ(r.find("user active"), std::string::npos) << r;

  // Type a line: the master's write is the slave's input; reading it is what
  // a shell does, and what updates the terminal's access time.
  ASSERT_TRUE(WriteFull(master.get(), AsBytes("ls\n")).ok());
  char buf[16];
  ssize_t n = ::read(slave->get(), buf, sizeof buf);
  ASSERT_EQ(n, 3);

  auto after = sensor.Read();
  ASSERT_TRUE(after.ok());
  EXPECT_LT(clock.WallNow() - *after->last_input, seconds(10));  // the kernel keeps 8 s granularity
  EXPECT_EQ(after->source, slave_path.substr(5));
  Sample typed;
  typed.user = *after;
  Decision d = detector.Decide(typed);
  EXPECT_FALSE(d.idle);
  ASSERT_FALSE(d.reasons.empty());
  EXPECT_EQ(d.reasons.front().rfind("user active on " + slave_path.substr(5), 0), 0u)
      << d.reasons.front();
}

}  // namespace
}  // namespace sparetime::scheduler
