// PowerSensor: whether the box runs on mains power, and its battery level.
//
// Reads /sys/class/power_supply/<name>/{type,online,capacity,status,scope}.
// Supplies with scope "Device" (a wireless mouse's battery) are ignored.
// Rules: any "Mains" or "USB" supply with online = 1 means on AC; if there
// are such supplies and all are offline, the box is on battery; with only
// batteries, it is on AC unless a battery says "Discharging". No supply at
// all (or no /sys/class/power_supply) is a desktop on mains.
//
// Thread safety: stateless apart from the reader; safe to share.
#ifndef SPARETIME_SCHEDULER_POWER_SENSOR_H_
#define SPARETIME_SCHEDULER_POWER_SENSOR_H_

#include <optional>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

struct PowerSample {
  bool on_ac = true;
  std::optional<int> battery_percent;  // lowest capacity of the system batteries
  int supplies = 0;                    // system supplies seen

  // "on AC", "on AC, battery 80%", "on battery (74%)",
  // "no power supply (desktop on mains)".
  std::string Describe() const;
};

class PowerSensor {
 public:
  explicit PowerSensor(const SystemReader& reader) : reader_(reader) {}

  // kCorruption naming the file when an attribute is not what the kernel writes.
  Result<PowerSample> Read() const;

 private:
  const SystemReader& reader_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_POWER_SENSOR_H_
