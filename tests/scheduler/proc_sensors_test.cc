// CPU, pressure, disk and network sensors over a fake /proc and /sys tree
// with real-format fixtures: parsing, rates between two readings, exclusion
// of the agent's own use, missing files (unavailable) and garbage (errors).
#include <gtest/gtest.h>

#include "scheduler_testing.h"
#include "sparetime/scheduler/cpu_sensor.h"
#include "sparetime/scheduler/disk_sensor.h"
#include "sparetime/scheduler/network_sensor.h"
#include "sparetime/scheduler/pressure_sensor.h"

namespace sparetime::scheduler {
namespace {

using testing::FakeClock;
using testing::FakeTree;

// /proc/stat with the aggregate line replaced: user, system, idle, iowait ticks.
std::string ProcStat(uint64_t user, uint64_t system, uint64_t idle, uint64_t iowait) {
  return "cpu  " + std::to_string(user) + " 4199 " + std::to_string(system) + " " +
         std::to_string(idle) + " " + std::to_string(iowait) + " 0 2305 32711 0 0\n" +
         std::string(testing::kProcStatTail);
}

// /proc/self/stat with a comm holding spaces and parentheses.
std::string SelfStat(uint64_t utime, uint64_t stime) {
  return "77 (spare (time) d) S 1 77 77 0 -1 4194560 5000 0 12 0 " + std::to_string(utime) + " " +
         std::to_string(stime) + " 0 0 20 0 9 0 1061633 3133440 366 0 0 0\n";
}

class CpuSensorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.Write("/proc/stat", std::string(testing::kProcStatCpuLine) + "\n" +
                                  std::string(testing::kProcStatTail));
    tree_.Write("/proc/self/stat", testing::kSelfStat);
    tree_.Write("/proc/loadavg", testing::kLoadAvg);
  }
  FakeTree tree_;
};

TEST_F(CpuSensorTest, FirstReadingParsesRealFilesButHasNoRate) {
  CpuSensor cpu(tree_.reader());
  auto s = cpu.Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s->has_value());
  EXPECT_FALSE((*s)->busy_percent.has_value());
  EXPECT_EQ((*s)->cpus, 2);
  EXPECT_DOUBLE_EQ((*s)->load1, 0.75);
  EXPECT_DOUBLE_EQ((*s)->load15, 1.15);
  EXPECT_EQ((*s)->Describe(), "cpu: measuring, load 0.75 on 2 CPUs");
}

TEST_F(CpuSensorTest, RateExcludesTheAgentsOwnTicks) {
  tree_.Write("/proc/stat", ProcStat(1000, 500, 8000, 500));
  tree_.Write("/proc/self/stat", SelfStat(100, 50));
  CpuSensor cpu(tree_.reader());
  ASSERT_TRUE(cpu.Read().ok());
  // +1000 ticks in all: 500 user + 100 system busy, 350 idle + 50 iowait;
  // of the 600 busy ticks the agent used 150 + 50 = 200.
  tree_.Write("/proc/stat", ProcStat(1500, 600, 8350, 550));
  tree_.Write("/proc/self/stat", SelfStat(250, 100));
  auto s = cpu.Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE((*s)->busy_percent.has_value());
  EXPECT_NEAR(*(*s)->busy_percent, 40.0, 1e-9);
  EXPECT_NEAR(*(*s)->own_percent, 20.0, 1e-9);
  EXPECT_EQ((*s)->Describe(), "cpu 40% busy (agent 20%), load 0.75 on 2 CPUs");
}

TEST_F(CpuSensorTest, AgentShareNeverMakesOthersNegative) {
  tree_.Write("/proc/stat", ProcStat(1000, 500, 8000, 500));
  tree_.Write("/proc/self/stat", SelfStat(0, 0));
  CpuSensor cpu(tree_.reader());
  ASSERT_TRUE(cpu.Read().ok());
  tree_.Write("/proc/stat", ProcStat(1100, 500, 8900, 500));
  tree_.Write("/proc/self/stat", SelfStat(150, 0));  // tick rounding: more than the box's busy
  auto s = cpu.Read();
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(*(*s)->busy_percent, 0.0);
  EXPECT_DOUBLE_EQ(*(*s)->own_percent, 10.0);
}

TEST_F(CpuSensorTest, GarbageIsAnErrorNamingTheFileAndKeepsThePreviousReading) {
  tree_.Write("/proc/stat", ProcStat(1000, 500, 8000, 500));
  tree_.Write("/proc/self/stat", SelfStat(0, 0));
  CpuSensor cpu(tree_.reader());
  ASSERT_TRUE(cpu.Read().ok());
  tree_.Write("/proc/stat", "hello world\n");
  auto bad = cpu.Read();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad.error().message().find("/proc/stat line 1"), std::string::npos)
      << bad.error().message();
  EXPECT_NE(bad.error().message().find("hello world"), std::string::npos);

  tree_.Write("/proc/self/stat", "no parenthesis here");
  tree_.Write("/proc/stat", ProcStat(1500, 500, 8500, 500));
  auto bad_self = cpu.Read();
  ASSERT_FALSE(bad_self.ok());
  EXPECT_NE(bad_self.error().message().find("/proc/self/stat"), std::string::npos);

  tree_.Write("/proc/self/stat", SelfStat(0, 0));
  auto good = cpu.Read();
  ASSERT_TRUE(good.ok());
  EXPECT_NEAR(*(*good)->busy_percent, 50.0, 1e-9);  // against the first good reading
}

TEST(CpuSensor, MissingProcStatIsUnavailable) {
  FakeTree tree;
  tree.Mkdir("/proc");
  CpuSensor cpu(tree.reader());
  auto s = cpu.Read();
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->has_value());
}

// ---- pressure ----

TEST(PressureSensor, ParsesRealFiles) {
  FakeTree tree;
  tree.Write("/proc/pressure/cpu", testing::kPressureCpu);
  tree.Write("/proc/pressure/io", testing::kPressureIo);
  tree.Write("/proc/pressure/memory", testing::kPressureMemory);
  tree.Write("/proc/self/cgroup", testing::kSelfCgroupV1V2);  // root cgroup: nothing subtracted
  auto s = PressureSensor(tree.reader()).Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s->has_value());
  const PressureSample& p = **s;
  EXPECT_DOUBLE_EQ(p.cpu->some_avg10, 3.73);
  EXPECT_DOUBLE_EQ(p.cpu->some_avg60, 1.11);
  EXPECT_DOUBLE_EQ(*p.cpu->full_avg10, 0.0);
  EXPECT_DOUBLE_EQ(p.io->some_avg60, 0.06);
  EXPECT_DOUBLE_EQ(*p.io->full_avg60, 0.05);
  EXPECT_FALSE(p.own_cgroup_subtracted);
  EXPECT_EQ(p.Describe(), "pressure (some avg10): cpu 3.7%, io 0%, memory 0%");
}

TEST(PressureSensor, MissingFilesAreUnavailableNotErrors) {
  FakeTree tree;
  tree.Mkdir("/proc");
  auto none = PressureSensor(tree.reader()).Read();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  tree.Write("/proc/pressure/io",
             "some avg10=34.00 avg60=20.00 avg300=3.00 total=1\n");  // no "full"
  auto io_only = PressureSensor(tree.reader()).Read();
  ASSERT_TRUE(io_only.ok());
  ASSERT_TRUE(io_only->has_value());
  EXPECT_FALSE((*io_only)->cpu.has_value());
  EXPECT_FALSE((*io_only)->memory.has_value());
  EXPECT_DOUBLE_EQ((*io_only)->io->some_avg10, 34.0);
  EXPECT_FALSE((*io_only)->io->full_avg10.has_value());
}

TEST(PressureSensor, GarbageIsAnErrorNamingTheFileAndLine) {
  FakeTree tree;
  tree.Write("/proc/pressure/memory",
             "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nfull avg10=x\n");
  auto s = PressureSensor(tree.reader()).Read();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(s.error().message().find("/proc/pressure/memory line 2"), std::string::npos)
      << s.error().message();
  tree.Write("/proc/pressure/memory", "");
  EXPECT_FALSE(PressureSensor(tree.reader()).Read().ok());
}

TEST(PressureSensor, SubtractsTheAgentsOwnCgroup) {
  FakeTree tree;
  tree.Write("/proc/pressure/io",
             "some avg10=34.00 avg60=20.00 avg300=3.00 total=1\n"
             "full avg10=10.00 avg60=5.00 avg300=1.00 total=1\n");
  tree.Write("/proc/self/cgroup", "0::/system.slice/sparetime.service\n");
  tree.Write("/sys/fs/cgroup/system.slice/sparetime.service/io.pressure",
             "some avg10=30.00 avg60=25.00 avg300=3.00 total=1\n"
             "full avg10=2.00 avg60=1.00 avg300=1.00 total=1\n");
  auto s = PressureSensor(tree.reader()).Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE((*s)->own_cgroup_subtracted);
  EXPECT_NEAR((*s)->io->some_avg10, 4.0, 1e-9);
  EXPECT_DOUBLE_EQ((*s)->io->some_avg60, 0.0);  // clamped, never negative
  EXPECT_NEAR(*(*s)->io->full_avg10, 8.0, 1e-9);
}

// ---- disk ----

// A /proc/diskstats line (kernel 5.5+ layout with discard and flush fields).
std::string DiskLine(int major, int minor, const std::string& name, uint64_t sectors_read,
                     uint64_t sectors_written, uint64_t io_ticks) {
  return std::to_string(major) + " " + std::to_string(minor) + " " + name + " 549209 7261245 " +
         std::to_string(sectors_read) + " 2025853 423615 74907 " + std::to_string(sectors_written) +
         " 2812105 0 " + std::to_string(io_ticks) +
         " 5220557 84532 56 370919056 175089 82934 207508\n";
}

class DiskSensorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.Mkdir("/sys/block/vda/device");
    tree_.Mkdir("/sys/block/loop0");
    tree_.Mkdir("/sys/block/zram0");
    tree_.Write("/proc/self/io", testing::kSelfIo);
    WriteStats(662586458, 390901088, 861964);
  }
  void WriteStats(uint64_t read, uint64_t written, uint64_t ticks, uint64_t loop_read = 0) {
    tree_.Write(
        "/proc/diskstats",
        "   7       0 loop0 17709 445 " + std::to_string(23452800 + loop_read) +
            " 51940 15176 133841 4868908 127792 0 25800 186597 50 0 819250 366 1214 6498\n" +
            DiskLine(254, 0, "vda", read, written, ticks) +
            DiskLine(254, 1, "vda1", read, written, ticks) +
            " 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
  }
  FakeTree tree_;
  FakeClock clock_;
};

TEST_F(DiskSensorTest, RatesForPhysicalWholeDisksOnly) {
  DiskSensor disk(tree_.reader(), clock_);
  auto first = disk.Read();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE((*first)->has_rates);
  EXPECT_EQ((*first)->Describe(), "disk: measuring");

  clock_.Advance(std::chrono::seconds(10));
  // vda: +20000 sectors read (10.24 MB), +2000 written, busy 5000 of 10000 ms;
  // the loop device's traffic is not counted (it lands on vda anyway).
  WriteStats(662586458 + 20000, 390901088 + 2000, 861964 + 5000, 1000000);
  auto s = disk.Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE((*s)->has_rates);
  ASSERT_EQ((*s)->disks.size(), 1u);
  const DiskRate& vda = (*s)->disks[0];
  EXPECT_EQ(vda.name, "vda");
  EXPECT_DOUBLE_EQ(vda.read_bytes_per_sec, 1024000.0);
  EXPECT_DOUBLE_EQ(vda.write_bytes_per_sec, 102400.0);
  EXPECT_DOUBLE_EQ(vda.busy_percent, 50.0);
  EXPECT_EQ((*s)->Describe(), "disk vda 50% busy, 1.1 MB/s (agent 0 B/s)");
}

TEST_F(DiskSensorTest, TheAgentsOwnIoIsSubtracted) {
  DiskSensor disk(tree_.reader(), clock_);
  ASSERT_TRUE(disk.Read().ok());
  clock_.Advance(std::chrono::seconds(10));
  WriteStats(662586458 + 20000, 390901088, 861964 + 8000);  // 10.24 MB read, 80% busy
  tree_.Write("/proc/self/io",
              "rchar: 1\nwchar: 0\nsyscr: 1\nsyscw: 0\nread_bytes: 7680000\n"
              "write_bytes: 0\ncancelled_write_bytes: 0\n");  // 3/4 of it was us
  auto s = disk.Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const DiskRate& vda = (*s)->disks[0];
  EXPECT_DOUBLE_EQ(vda.read_bytes_per_sec, 256000.0);
  EXPECT_DOUBLE_EQ(vda.busy_percent, 20.0);
  EXPECT_DOUBLE_EQ((*s)->own_bytes_per_sec, 768000.0);
}

TEST_F(DiskSensorTest, CountersGoingBackwardsGiveZeroNotHugeRates) {
  DiskSensor disk(tree_.reader(), clock_);
  ASSERT_TRUE(disk.Read().ok());
  clock_.Advance(std::chrono::seconds(1));
  WriteStats(5, 5, 5);  // device re-attached, counters restarted
  auto s = disk.Read();
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ((*s)->disks[0].read_bytes_per_sec, 0.0);
  EXPECT_DOUBLE_EQ((*s)->disks[0].busy_percent, 0.0);
}

TEST_F(DiskSensorTest, GarbageAndMissingFiles) {
  tree_.Write("/proc/diskstats", DiskLine(254, 0, "vda", 1, 1, 1) + "254 0 vdb 1 2 three\n");
  DiskSensor disk(tree_.reader(), clock_);
  auto bad = disk.Read();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("/proc/diskstats line 2"), std::string::npos)
      << bad.error().message();

  WriteStats(1, 1, 1);
  tree_.Write("/proc/self/io", "read_bytes 12\n");
  bad = disk.Read();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("/proc/self/io line 1"), std::string::npos)
      << bad.error().message();

  FakeTree empty;
  empty.Mkdir("/proc");
  auto none = DiskSensor(empty.reader(), clock_).Read();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// ---- network ----

std::string NetDev(uint64_t lo, uint64_t eth0_rx, uint64_t eth0_tx, uint64_t wlan0 = 0) {
  auto line = [](const std::string& name, uint64_t rx, uint64_t tx) {
    return name + ": " + std::to_string(rx) + " 50310 0 0 0 0 0 0 " + std::to_string(tx) +
           " 50310 0 0 0 0 0 0\n";
  };
  return std::string(testing::kNetDevHeader) + line("    lo", lo, lo) +
         "  ifb0:       0       0    0    0    0     0          0         0        0       0    0  "
         "  0"
         "    0     0       0          0\n" +
         line("  eth0", eth0_rx, eth0_tx) + "wlan0:" + std::to_string(wlan0) +
         " 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0\n";  // old kernels glue the name to the number
}

TEST(NetworkSensor, BytesPerSecondOnNonLoopbackInterfaces) {
  FakeTree tree;
  FakeClock clock;
  tree.Write("/proc/net/dev", NetDev(5005176, 37180495, 82796));
  NetworkSensor net(tree.reader(), clock);
  auto first = net.Read();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE((*first)->has_rates);

  clock.Advance(std::chrono::seconds(2));
  tree.Write("/proc/net/dev",
             NetDev(5005176 + 1000000000, 37180495 + 1500000, 82796 + 500000, 4000));
  auto s = net.Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_DOUBLE_EQ((*s)->bytes_per_sec, 1002000.0);  // 2 MB eth0 + 4 kB wlan0 over 2 s; lo ignored
  EXPECT_EQ((*s)->busiest_interface, "eth0");
  EXPECT_EQ((*s)->Describe(), "network 1.0 MB/s (eth0)");
}

TEST(NetworkSensor, TheAgentsOwnTrafficIsSubtracted) {
  FakeTree tree;
  FakeClock clock;
  uint64_t own = 0;
  tree.Write("/proc/net/dev", NetDev(0, 0, 0));
  NetworkSensor net(tree.reader(), clock, [&own] { return own; });
  ASSERT_TRUE(net.Read().ok());
  clock.Advance(std::chrono::seconds(1));
  tree.Write("/proc/net/dev", NetDev(0, 0, 3000000));
  own = 2500000;
  auto s = net.Read();
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ((*s)->bytes_per_sec, 500000.0);
  EXPECT_DOUBLE_EQ((*s)->own_bytes_per_sec, 2500000.0);
}

TEST(NetworkSensor, GarbageAndMissingFile) {
  FakeTree tree;
  FakeClock clock;
  tree.Mkdir("/proc/net");
  auto none = NetworkSensor(tree.reader(), clock).Read();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  tree.Write("/proc/net/dev", std::string(testing::kNetDevHeader) + "eth0 1 2 3\n");
  auto bad = NetworkSensor(tree.reader(), clock).Read();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad.error().message().find("/proc/net/dev line 3"), std::string::npos)
      << bad.error().message();
}

}  // namespace
}  // namespace sparetime::scheduler
