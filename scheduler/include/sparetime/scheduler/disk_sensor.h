// DiskSensor: throughput and busy time of each physical disk, minus the
// agent's own I/O.
//
// Reads /proc/diskstats (sectors read/written, io_ticks = ms the device had
// I/O in flight) for whole physical disks only: a name counts when
// /sys/block/<name>/device exists, which leaves out partitions (they double
// count their disk) and loop, zram, dm and md devices (their I/O lands on a
// physical disk too). The agent's own bytes come from /proc/self/io
// (read_bytes + write_bytes, all threads); they cannot be attributed to a
// disk, so they are subtracted from every disk in proportion to its share of
// the traffic, and each disk's busy time is scaled by the share left to
// others. Rates need two readings: the first Read() has has_rates == false.
//
// Thread safety: not thread-safe (keeps the previous counters).
#ifndef SPARETIME_SCHEDULER_DISK_SENSOR_H_
#define SPARETIME_SCHEDULER_DISK_SENSOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

struct DiskRate {
  std::string name;  // as in /proc/diskstats, e.g. "nvme0n1"
  // Others' I/O since the previous reading.
  double read_bytes_per_sec = 0;
  double write_bytes_per_sec = 0;
  double busy_percent = 0;  // of wall time, 0..100
};

struct DiskSample {
  bool has_rates = false;
  std::vector<DiskRate> disks;  // sorted by name
  double own_bytes_per_sec = 0;

  // The busiest disk, or nullptr when there are none.
  const DiskRate* Busiest() const;
  // "disk vda 12% busy, 3.2 MB/s (agent 40.0 MB/s)" or "disk: measuring".
  std::string Describe() const;
};

class DiskSensor {
 public:
  DiskSensor(const SystemReader& reader, const Clock& clock) : reader_(reader), clock_(clock) {}

  // nullopt when /proc/diskstats does not exist; kCorruption naming the file
  // and line when it or /proc/self/io is not in the expected format.
  Result<std::optional<DiskSample>> Read();

 private:
  struct Counters {
    uint64_t sectors_read = 0, sectors_written = 0, io_ticks_ms = 0;
  };
  struct Reading {
    std::chrono::steady_clock::time_point when;
    std::map<std::string, Counters> disks;
    uint64_t own_bytes = 0;
  };
  Result<Reading> Take() const;

  const SystemReader& reader_;
  const Clock& clock_;
  std::optional<Reading> previous_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_DISK_SENSOR_H_
