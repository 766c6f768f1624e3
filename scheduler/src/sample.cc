// SensorSet: reads every sensor; failures become warnings (see sample.h).
#include "sparetime/scheduler/sample.h"

namespace sparetime::scheduler {
namespace {

// Stores a sensor's value (into a field of type T or optional<T>), or
// records its error as a warning.
template <typename T, typename Field>
void Take(Result<T> r, const char* name, Field* out, std::vector<std::string>* warnings) {
  if (r.ok()) {
    *out = std::move(r).value();
  } else {
    warnings->push_back(std::string(name) + " sensor: " + r.error().ToString());
  }
}

}  // namespace

std::vector<std::string> Sample::Describe(std::chrono::system_clock::time_point now) const {
  std::vector<std::string> lines;
  if (user) lines.push_back(user->Describe(now));
  if (cpu) lines.push_back(cpu->Describe());
  if (pressure) lines.push_back(pressure->Describe());
  if (disk) lines.push_back(disk->Describe());
  if (power) lines.push_back(power->Describe());
  if (network) lines.push_back(network->Describe());
  return lines;
}

SensorSet::SensorSet(const SystemReader& reader, const Clock& clock, SensorSetOptions options)
    : user_(reader, clock, std::move(options.user)),
      cpu_(reader),
      pressure_(reader),
      disk_(reader, clock),
      power_(reader),
      network_(reader, clock, std::move(options.own_network_bytes)) {}

Sample SensorSet::Read() {
  Sample s;
  Take(user_.Read(), "user activity", &s.user, &s.warnings);
  Take(cpu_.Read(), "cpu", &s.cpu, &s.warnings);
  Take(pressure_.Read(), "pressure", &s.pressure, &s.warnings);
  Take(disk_.Read(), "disk", &s.disk, &s.warnings);
  Take(power_.Read(), "power", &s.power, &s.warnings);
  Take(network_.Read(), "network", &s.network, &s.warnings);
  return s;
}

}  // namespace sparetime::scheduler
