// PressureSensor: Linux pressure stall information (PSI) for CPU, I/O and
// memory: the share of recent wall time in which some (or all) non-idle
// tasks were stalled waiting for that resource.
//
// Reads /proc/pressure/{cpu,io,memory}. When the agent runs in a cgroup of
// its own (cgroup v2 line "0::/path" in /proc/self/cgroup, path not "/"),
// the same files of that cgroup (/sys/fs/cgroup/<path>/<res>.pressure) are
// subtracted, so the values are a lower bound of the stall caused by
// everything but the agent. A kernel without PSI (no /proc/pressure) makes
// the sensor unavailable, which is not an error.
//
// Thread safety: stateless apart from the reader; safe to share.
#ifndef SPARETIME_SCHEDULER_PRESSURE_SENSOR_H_
#define SPARETIME_SCHEDULER_PRESSURE_SENSOR_H_

#include <optional>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

// Percentages 0..100 over the last 10 s and 60 s.
struct Psi {
  double some_avg10 = 0, some_avg60 = 0;
  std::optional<double> full_avg10, full_avg60;  // no "full" line for cpu on older kernels
};

struct PressureSample {
  std::optional<Psi> cpu, io, memory;  // nullopt when that file is missing
  bool own_cgroup_subtracted = false;

  // "pressure (some avg10): cpu 3.7%, io 0%, memory 0%".
  std::string Describe() const;
};

class PressureSensor {
 public:
  explicit PressureSensor(const SystemReader& reader) : reader_(reader) {}

  // nullopt when none of the three files exists; kCorruption naming the file
  // and line when one is not in the PSI format.
  Result<std::optional<PressureSample>> Read() const;

 private:
  const SystemReader& reader_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_PRESSURE_SENSOR_H_
