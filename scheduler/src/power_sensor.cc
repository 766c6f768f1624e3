// PowerSensor: /sys/class/power_supply attributes to "on AC / on battery".
#include "sparetime/scheduler/power_sensor.h"

#include <algorithm>

#include "text_util.h"

namespace sparetime::scheduler {
namespace {

constexpr std::string_view kSupplies = "/sys/class/power_supply";

// A one-line attribute, trimmed; nullopt when the file does not exist.
Result<std::optional<std::string>> Attribute(const SystemReader& reader, const std::string& dir,
                                             std::string_view name) {
  ST_ASSIGN_OR_RETURN(std::optional<std::string> text,
                      reader.ReadFileIfExists(dir + "/" + std::string(name)));
  if (text) *text = std::string(TrimSpace(*text));
  return text;
}

Result<std::optional<int>> NumberAttribute(const SystemReader& reader, const std::string& dir,
                                           std::string_view name, uint64_t max) {
  ST_ASSIGN_OR_RETURN(std::optional<std::string> text, Attribute(reader, dir, name));
  if (!text) return std::optional<int>();
  std::optional<uint64_t> v = ParseU64(*text);
  if (!v || *v > max) {
    return UnexpectedContent(dir + "/" + std::string(name), 1, "a number 0.." + std::to_string(max),
                             *text);
  }
  return std::optional<int>(static_cast<int>(*v));
}

}  // namespace

std::string PowerSample::Describe() const {
  if (supplies == 0) return "no power supply (desktop on mains)";
  std::string level = battery_percent ? std::to_string(*battery_percent) + "%" : "";
  if (!on_ac) return "on battery" + (level.empty() ? "" : " (" + level + ")");
  return "on AC" + (level.empty() ? "" : ", battery " + level);
}

Result<PowerSample> PowerSensor::Read() const {
  PowerSample sample;
  if (!reader_.Exists(kSupplies)) return sample;
  ST_ASSIGN_OR_RETURN(std::vector<std::string> names, reader_.ListDir(kSupplies));
  int mains = 0, mains_online = 0;
  bool discharging = false;
  for (const std::string& name : names) {
    std::string dir = std::string(kSupplies) + "/" + name;
    ST_ASSIGN_OR_RETURN(std::optional<std::string> scope, Attribute(reader_, dir, "scope"));
    if (scope && *scope == "Device") continue;
    ST_ASSIGN_OR_RETURN(std::optional<std::string> type, Attribute(reader_, dir, "type"));
    if (!type) continue;
    if (*type == "Mains" || *type == "USB") {
      ++sample.supplies;
      ++mains;
      ST_ASSIGN_OR_RETURN(std::optional<int> online, NumberAttribute(reader_, dir, "online", 2));
      if (online.value_or(0) != 0) ++mains_online;
    } else if (*type == "Battery") {
      ++sample.supplies;
      ST_ASSIGN_OR_RETURN(std::optional<int> capacity,
                          NumberAttribute(reader_, dir, "capacity", 100));
      if (capacity) {
        sample.battery_percent = std::min(*capacity, sample.battery_percent.value_or(100));
      }
      ST_ASSIGN_OR_RETURN(std::optional<std::string> status, Attribute(reader_, dir, "status"));
      if (status && *status == "Discharging") discharging = true;
    }
  }
  sample.on_ac = mains > 0 ? mains_online > 0 : !discharging;
  return sample;
}

}  // namespace sparetime::scheduler
