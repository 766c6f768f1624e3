// CpuSensor: how busy the CPUs are with work other than the agent's.
//
// Reads /proc/stat (the aggregate "cpu" line and the cpuN count),
// /proc/self/stat (the agent's own utime + stime, all threads) and
// /proc/loadavg. Utilisation is a rate, so it needs two readings: the first
// Read() reports no busy_percent; every later one reports the share of all
// CPUs' time since the previous Read() spent busy (not idle or iowait) by
// anything but this process. The load average is reported for people; it is
// not used to decide, because the agent's own reads (tasks in D state) raise
// it and cannot be subtracted.
//
// Thread safety: not thread-safe (keeps the previous counters).
#ifndef SPARETIME_SCHEDULER_CPU_SENSOR_H_
#define SPARETIME_SCHEDULER_CPU_SENSOR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

struct CpuSample {
  // Others' busy time over the interval, % of all CPUs (0..100); nullopt on
  // the first reading.
  std::optional<double> busy_percent;
  std::optional<double> own_percent;  // the agent's share, same scale
  int cpus = 0;                       // cpuN lines in /proc/stat
  double load1 = 0, load5 = 0, load15 = 0;

  // "cpu 43% busy (agent 2%), load 1.20 on 4 CPUs" or "cpu: measuring".
  std::string Describe() const;
};

class CpuSensor {
 public:
  explicit CpuSensor(const SystemReader& reader) : reader_(reader) {}

  // nullopt when /proc/stat does not exist; kCorruption naming the file and
  // line when a file is not in the expected format.
  Result<std::optional<CpuSample>> Read();

 private:
  struct Counters {
    uint64_t total = 0;  // all ticks (user..steal)
    uint64_t busy = 0;   // total - idle - iowait
    uint64_t own = 0;    // this process's utime + stime
  };
  const SystemReader& reader_;
  std::optional<Counters> previous_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_CPU_SENSOR_H_
