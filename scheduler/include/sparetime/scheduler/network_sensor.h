// NetworkSensor: bytes per second received plus sent on all interfaces
// except loopback ("lo"), from /proc/net/dev deltas. The agent's own peer
// traffic can be excluded by passing a cumulative counter of the bytes it
// moved (the transport knows; nullptr counts everything). Rates need two
// readings: the first Read() has has_rates == false.
//
// Thread safety: not thread-safe (keeps the previous counters).
#ifndef SPARETIME_SCHEDULER_NETWORK_SENSOR_H_
#define SPARETIME_SCHEDULER_NETWORK_SENSOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

struct NetworkSample {
  bool has_rates = false;
  double bytes_per_sec = 0;       // others' traffic, all non-loopback interfaces
  std::string busiest_interface;  // "" when idle
  double own_bytes_per_sec = 0;

  // "network 3.2 MB/s (eth0)" or "network: measuring".
  std::string Describe() const;
};

class NetworkSensor {
 public:
  // `own_bytes`: the agent's total bytes sent + received so far, or nullptr.
  NetworkSensor(const SystemReader& reader, const Clock& clock,
                std::function<uint64_t()> own_bytes = nullptr)
      : reader_(reader), clock_(clock), own_bytes_(std::move(own_bytes)) {}

  // nullopt when /proc/net/dev does not exist; kCorruption naming the line
  // when it is not in the expected format.
  Result<std::optional<NetworkSample>> Read();

 private:
  struct Reading {
    std::chrono::steady_clock::time_point when;
    std::map<std::string, uint64_t> interfaces;  // rx + tx bytes
    uint64_t own = 0;
  };
  const SystemReader& reader_;
  const Clock& clock_;
  std::function<uint64_t()> own_bytes_;
  std::optional<Reading> previous_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_NETWORK_SENSOR_H_
