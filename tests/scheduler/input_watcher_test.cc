// InputWatcher: input noticed within a second through poll(2), with FIFOs
// standing in for /dev/input/event* in a fake tree; hang-up, rescans,
// Wake(); typing into a real pseudo-terminal of a logged-in user; and a real
// uinput keyboard where /dev/uinput exists.
#include "sparetime/scheduler/input_watcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/uinput.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <thread>

#include "scheduler_testing.h"
#include "sparetime/scheduler/user_activity.h"

namespace sparetime::scheduler {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using testing::FakeClock;
using testing::FakeTree;

// One struct input_event's worth of bytes, as the kernel would deliver.
void WriteEvent(int fd) {
  struct input_event ev {};
  ev.type = EV_KEY;
  ev.code = KEY_A;
  ev.value = 1;
  ASSERT_EQ(::write(fd, &ev, sizeof ev), static_cast<ssize_t>(sizeof ev));
}

class InputWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.MkFifo("/dev/input/event0");
    tree_.Write("/dev/input/mice", "");  // not an event node: ignored
    tree_.Mkdir("/dev/input/by-id");
  }
  std::unique_ptr<InputWatcher> Create() {
    auto w = InputWatcher::Create(tree_.reader(), clock_);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  Fd OpenWriter(const std::string& path) {
    auto fd = OpenFile(tree_.HostPath(path), O_WRONLY | O_NONBLOCK);
    EXPECT_TRUE(fd.ok()) << fd.status().ToString();
    return fd.ok() ? std::move(fd).value() : Fd();
  }
  FakeTree tree_;
  FakeClock clock_;
};

TEST_F(InputWatcherTest, NoInputTimesOut) {
  auto w = Create();
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->device_count(), 1u);
  auto start = steady_clock::now();
  auto r = w->Wait(milliseconds(50));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(*r);
  EXPECT_GE(steady_clock::now() - start, milliseconds(45));
  EXPECT_FALSE(w->LastActivity().has_value());
}

TEST_F(InputWatcherTest, InputIsNoticedWithinASecond) {
  auto w = Create();
  ASSERT_NE(w, nullptr);
  Fd writer = OpenWriter("/dev/input/event0");
  steady_clock::time_point typed;
  std::thread typist([&] {
    std::this_thread::sleep_for(milliseconds(100));
    typed = steady_clock::now();
    WriteEvent(writer.get());
  });
  auto r = w->Wait(seconds(5));
  auto noticed = steady_clock::now();
  typist.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r);
  EXPECT_LT(noticed - typed, seconds(1));
  ASSERT_TRUE(w->LastActivity().has_value());
  EXPECT_EQ(w->LastActivity()->when, clock_.WallNow());
  EXPECT_EQ(w->LastActivity()->where, "input/event0");

  // The event was consumed: the next wait is quiet again.
  auto again = w->Wait(milliseconds(20));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

TEST_F(InputWatcherTest, AHungUpDeviceIsDroppedAndReopenedWithoutSpinning) {
  auto w = Create();
  ASSERT_NE(w, nullptr);
  {
    Fd writer = OpenWriter("/dev/input/event0");
    WriteEvent(writer.get());
  }  // writer gone: the FIFO now reports POLLHUP, as an unplugged device would
  auto r = w->Wait(seconds(1));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);                   // the queued event still counts
  EXPECT_EQ(w->device_count(), 1u);  // reopened by the rescan
  auto start = steady_clock::now();
  auto quiet = w->Wait(milliseconds(50));
  ASSERT_TRUE(quiet.ok());
  EXPECT_FALSE(*quiet);
  EXPECT_GE(steady_clock::now() - start, milliseconds(45));  // blocked, did not spin on POLLHUP
}

TEST_F(InputWatcherTest, HotPluggedDevicesArePickedUpByTheRescan) {
  auto w = Create();
  ASSERT_NE(w, nullptr);
  tree_.MkFifo("/dev/input/event7");
  ASSERT_TRUE(w->Wait(milliseconds(1)).ok());
  EXPECT_EQ(w->device_count(), 1u);  // not yet: rescans are every 5 s
  clock_.Advance(seconds(5));
  ASSERT_TRUE(w->Wait(milliseconds(1)).ok());
  EXPECT_EQ(w->device_count(), 2u);
  Fd writer = OpenWriter("/dev/input/event7");
  WriteEvent(writer.get());
  auto r = w->Wait(seconds(1));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
}

TEST_F(InputWatcherTest, WakeInterruptsAWait) {
  auto w = Create();
  ASSERT_NE(w, nullptr);
  std::thread waker([&] {
    std::this_thread::sleep_for(milliseconds(50));
    w->Wake();
  });
  auto start = steady_clock::now();
  auto r = w->Wait(seconds(10));
  waker.join();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_LT(steady_clock::now() - start, seconds(2));
}

TEST(InputWatcher, NoInputDirectoryIsAHeadlessBox) {
  FakeTree tree;
  FakeClock clock;
  tree.Mkdir("/dev");
  auto w = InputWatcher::Create(tree.reader(), clock);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->device_count(), 0u);
  auto r = (*w)->Wait(milliseconds(10));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

// A real pty named in utmp: the shell reading typed input is noticed at
// once through inotify, output is not, and a logout removes the watch.
TEST(InputWatcherTerminal, TypingIntoAUsersPtyIsNoticedWithinASecond) {
  Fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) GTEST_SKIP() << "posix_openpt: " << std::strerror(errno);
  ASSERT_EQ(::grantpt(master.get()), 0);
  ASSERT_EQ(::unlockpt(master.get()), 0);
  std::string slave_path = ::ptsname(master.get());
  std::string line = slave_path.substr(std::string("/dev/").size());
  auto slave = OpenFile(slave_path, O_RDWR | O_NOCTTY);
  ASSERT_TRUE(slave.ok()) << slave.status().ToString();

  FakeTree tree;
  FakeClock clock(std::chrono::system_clock::now() +
                  std::chrono::hours(1));  // after the tty's atime
  tree.Symlink("/dev/pts", "/dev/pts");
  tree.Write("/run/utmp", testing::UtmpRecord(USER_PROCESS, line, "tester") +
                              testing::UtmpRecord(USER_PROCESS, "pts/999999", "stale"));
  auto w = InputWatcher::Create(tree.reader(), clock);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->terminal_count(), 1u);

  // Output to the terminal is not input.
  ASSERT_TRUE(WriteFull(slave->get(), AsBytes("prompt$ ")).ok());
  auto out = (*w)->Wait(milliseconds(50));
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(*out);

  steady_clock::time_point typed;
  std::thread shell([&] {
    std::this_thread::sleep_for(milliseconds(100));
    typed = steady_clock::now();
    ASSERT_TRUE(WriteFull(master.get(), AsBytes("ls\n")).ok());  // the keyboard
    char buf[16];
    ASSERT_EQ(::read(slave->get(), buf, sizeof buf), 3);  // the shell reads it
  });
  auto r = (*w)->Wait(seconds(5));
  auto noticed = steady_clock::now();
  shell.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r);
  EXPECT_LT(noticed - typed, seconds(1));
  EXPECT_EQ((*w)->LastActivity()->where, line);

  // The sensor reports the watcher's terminal as the newest input.
  UserActivitySensor sensor(tree.reader(), clock, {.input_watcher = w->get()});
  auto sample = sensor.Read();
  ASSERT_TRUE(sample.ok());
  EXPECT_EQ(sample->source, line);
  EXPECT_EQ(*sample->last_input, clock.WallNow());

  // Logged out: the next rescan drops the watch.
  tree.Write("/run/utmp", "");
  clock.Advance(seconds(5));
  ASSERT_TRUE((*w)->Wait(milliseconds(1)).ok());
  EXPECT_EQ((*w)->terminal_count(), 0u);
}

// A virtual keyboard through the kernel's uinput: the real evdev path.
TEST(InputWatcherUinput, KeyPressOnAVirtualKeyboardIsNoticed) {
  auto ui = OpenFile("/dev/uinput", O_WRONLY | O_NONBLOCK);
  if (!ui.ok()) GTEST_SKIP() << "no uinput here (" << ui.status().ToString() << ")";
  int fd = ui->get();
  ASSERT_EQ(::ioctl(fd, UI_SET_EVBIT, EV_KEY), 0);
  ASSERT_EQ(::ioctl(fd, UI_SET_KEYBIT, KEY_A), 0);
  struct uinput_setup setup {};
  setup.id.bustype = BUS_VIRTUAL;
  std::strncpy(setup.name, "sparetime test keyboard", UINPUT_MAX_NAME_SIZE - 1);
  ASSERT_EQ(::ioctl(fd, UI_DEV_SETUP, &setup), 0);
  ASSERT_EQ(::ioctl(fd, UI_DEV_CREATE), 0);
  std::this_thread::sleep_for(milliseconds(300));  // let udev create the node

  SystemReader root;
  auto w = InputWatcher::Create(root, SystemClock());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_GE((*w)->device_count(), 1u);
  auto start = steady_clock::now();
  for (int value : {1, 0}) {
    struct input_event ev[2]{};
    ev[0].type = EV_KEY;
    ev[0].code = KEY_A;
    ev[0].value = value;
    ev[1].type = EV_SYN;
    ev[1].code = SYN_REPORT;
    ASSERT_EQ(::write(fd, ev, sizeof ev), static_cast<ssize_t>(sizeof ev));
  }
  auto r = (*w)->Wait(seconds(2));
  ::ioctl(fd, UI_DEV_DESTROY);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r);
  EXPECT_LT(steady_clock::now() - start, seconds(1));
}

}  // namespace
}  // namespace sparetime::scheduler
