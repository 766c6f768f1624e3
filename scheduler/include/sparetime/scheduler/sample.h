// Sample and SensorSet: one reading of every sensor, taken together, which
// is what the IdleDetector decides on.
//
// SensorSet owns one of each sensor and reads them all in Read(). A sensor
// that fails (garbage in /proc, unreadable utmp) leaves its field empty and
// adds a warning naming the sensor and the error; a sensor that does not
// exist on this kernel just leaves its field empty. Read() itself never fails.
//
// Thread safety: SensorSet is not thread-safe; Sample is a value.
#ifndef SPARETIME_SCHEDULER_SAMPLE_H_
#define SPARETIME_SCHEDULER_SAMPLE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/scheduler/cpu_sensor.h"
#include "sparetime/scheduler/disk_sensor.h"
#include "sparetime/scheduler/network_sensor.h"
#include "sparetime/scheduler/power_sensor.h"
#include "sparetime/scheduler/pressure_sensor.h"
#include "sparetime/scheduler/system_reader.h"
#include "sparetime/scheduler/user_activity.h"

namespace sparetime::scheduler {

struct Sample {
  std::optional<UserActivitySample> user;
  std::optional<CpuSample> cpu;
  std::optional<PressureSample> pressure;
  std::optional<DiskSample> disk;
  std::optional<PowerSample> power;
  std::optional<NetworkSample> network;
  std::vector<std::string> warnings;  // "cpu sensor: /proc/stat line 1: ..."

  // One line per available sensor, for status output.
  std::vector<std::string> Describe(std::chrono::system_clock::time_point now) const;
};

struct SensorSetOptions {
  UserActivityOptions user;
  // The agent's cumulative network bytes, excluded from the network rate.
  std::function<uint64_t()> own_network_bytes;
};

class SensorSet {
 public:
  SensorSet(const SystemReader& reader, const Clock& clock, SensorSetOptions options = {});

  Sample Read();

 private:
  UserActivitySensor user_;
  CpuSensor cpu_;
  PressureSensor pressure_;
  DiskSensor disk_;
  PowerSensor power_;
  NetworkSensor network_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_SAMPLE_H_
