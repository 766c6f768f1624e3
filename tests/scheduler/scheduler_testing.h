// Test helpers for the scheduler: the fake Clock, and a fake root tree
// (proc/, sys/, dev/, run/) in a temporary directory for SystemReader, plus
// real-format fixture text captured from a Linux 6.x machine.
#ifndef SPARETIME_TESTS_SCHEDULER_SCHEDULER_TESTING_H_
#define SPARETIME_TESTS_SCHEDULER_SCHEDULER_TESTING_H_

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>
#include <utmp.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/fd.h"
#include "sparetime/scheduler/system_reader.h"
#include "testutil/fake_clock.h"
#include "testutil/testutil.h"

namespace sparetime::scheduler::testing {

using std::chrono::steady_clock;
using std::chrono::system_clock;

// Wall time of a UTC calendar date.
inline system_clock::time_point UtcTime(int year, int month, int day, int hour, int minute,
                                        int second = 0) {
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return system_clock::from_time_t(timegm(&tm));
}

// Monday 3 June 2024, 12:00 UTC.
inline system_clock::time_point DefaultWall() { return UtcTime(2024, 6, 3, 12, 0); }

using sparetime::testing::FakeClock;

// A fake root for SystemReader.
class FakeTree {
 public:
  FakeTree() : reader_(dir_.path()) {}
  const SystemReader& reader() const { return reader_; }
  std::string HostPath(const std::string& path) const { return dir_.path() + path; }

  void Write(const std::string& path, std::string_view content) {
    std::string host = HostPath(path);
    ASSERT_TRUE(MakeDirs(host.substr(0, host.rfind('/'))).ok()) << host;
    std::ofstream f(host, std::ios::binary | std::ios::trunc);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    f.close();
    ASSERT_TRUE(f.good()) << host;
  }
  void Mkdir(const std::string& path) { ASSERT_TRUE(MakeDirs(HostPath(path)).ok()) << path; }
  void MkFifo(const std::string& path) {
    std::string host = HostPath(path);
    ASSERT_TRUE(MakeDirs(host.substr(0, host.rfind('/'))).ok()) << host;
    ASSERT_EQ(::mkfifo(host.c_str(), 0600), 0) << host << ": " << std::strerror(errno);
  }
  void Symlink(const std::string& target, const std::string& path) {
    std::string host = HostPath(path);
    ASSERT_TRUE(MakeDirs(host.substr(0, host.rfind('/'))).ok()) << host;
    ASSERT_EQ(::symlink(target.c_str(), host.c_str()), 0) << host << ": " << std::strerror(errno);
  }
  void Remove(const std::string& path) { ASSERT_EQ(::unlink(HostPath(path).c_str()), 0) << path; }
  void SetTimes(const std::string& path, system_clock::time_point atime,
                system_clock::time_point mtime) {
    SetHostTimes(HostPath(path), atime, mtime);
  }
  static void SetHostTimes(const std::string& host, system_clock::time_point atime,
                           system_clock::time_point mtime) {
    struct timespec ts[2] = {ToTimespec(atime), ToTimespec(mtime)};
    ASSERT_EQ(::utimensat(AT_FDCWD, host.c_str(), ts, 0), 0)
        << host << ": " << std::strerror(errno);
  }

 private:
  static struct timespec ToTimespec(system_clock::time_point t) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    return timespec{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  }
  sparetime::testing::TempDir dir_;
  SystemReader reader_;
};

// A pseudo-terminal pair; "typing" writes to the master and reads the line
// on the slave as a shell would (that read is the terminal input signal).
class Pty {
 public:
  Pty() : master_(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) {
    if (!master_.valid() || ::grantpt(master_.get()) != 0 || ::unlockpt(master_.get()) != 0) {
      return;
    }
    path_ = ::ptsname(master_.get());
    auto slave = OpenFile(path_, O_RDWR | O_NOCTTY);
    if (slave.ok()) slave_ = std::move(slave).value();
  }
  bool ok() const { return slave_.valid(); }
  std::string line() const { return path_.substr(std::string("/dev/").size()); }  // "pts/3"
  void Type(std::string_view text) {
    ASSERT_TRUE(WriteFull(master_.get(), AsBytes(text)).ok());
    char buf[64];
    ASSERT_GT(::read(slave_.get(), buf, sizeof buf), 0);
  }

 private:
  Fd master_;
  Fd slave_;
  std::string path_;
};

// One struct utmp record as bytes.
inline std::string UtmpRecord(short type, const std::string& line, const std::string& user) {
  struct utmp u;
  std::memset(&u, 0, sizeof u);
  u.ut_type = type;
  u.ut_pid = 4242;
  std::strncpy(u.ut_line, line.c_str(), sizeof u.ut_line);
  std::strncpy(u.ut_user, user.c_str(), sizeof u.ut_user);
  return std::string(reinterpret_cast<const char*>(&u), sizeof u);
}

// Real lines from this project's build machine (kernel 6.x, 2 CPUs).
inline constexpr std::string_view kProcStatTail =
    "cpu0 566761 1987 75398 391593 7311 0 709 16380 0 0\n"
    "cpu1 601066 2211 96234 317346 25531 0 1595 16331 0 0\n"
    "intr 6559228 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 8 0 0 0 0 2123 3631\n"
    "ctxt 8577001\n"
    "btime 1795662658\n"
    "processes 100249\n"
    "procs_running 6\n";
inline constexpr std::string_view kProcStatCpuLine =
    "cpu  1167828 4199 171633 708940 32842 0 2305 32711 0 0";
inline constexpr std::string_view kSelfStat =
    "2859 (cat) R 2855 2855 27963 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 1061633 3133440 366 "
    "18446744073709551615 94825863688192 94825863708073 140726098012496 0 0 0 0 0 0 0 0 0 17 0 0 0 "
    "0 "
    "0 0\n";
inline constexpr std::string_view kLoadAvg = "0.75 0.73 1.15 1/88 30138\n";
inline constexpr std::string_view kPressureCpu =
    "some avg10=3.73 avg60=1.11 avg300=1.22 total=2805635797\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
inline constexpr std::string_view kPressureIo =
    "some avg10=0.00 avg60=0.06 avg300=0.68 total=381095878\n"
    "full avg10=0.00 avg60=0.05 avg300=0.43 total=223060163\n";
inline constexpr std::string_view kPressureMemory =
    "some avg10=0.00 avg60=0.00 avg300=0.00 total=2668849\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=1351397\n";
inline constexpr std::string_view kSelfIo =
    "rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 0\nread_bytes: 0\nwrite_bytes: 0\n"
    "cancelled_write_bytes: 0\n";
inline constexpr std::string_view kNetDevHeader =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop "
    "fifo "
    "colls carrier compressed\n";
inline constexpr std::string_view kSelfCgroupV1V2 =
    "9:name=systemd:/\n8:pids:/\n7:blkio:/\n4:memory:/process_api/"
    "e79c208a20fc2014db9762d2931e87f3\n"
    "1:cpu:/\n0::/\n";

}  // namespace sparetime::scheduler::testing

#endif  // SPARETIME_TESTS_SCHEDULER_SCHEDULER_TESTING_H_
