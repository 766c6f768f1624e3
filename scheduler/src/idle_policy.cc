// IdlePolicy::Validate: range checks with the field named.
#include "sparetime/scheduler/idle_policy.h"

#include <string>

namespace sparetime::scheduler {
namespace {

Status CheckPercent(const char* field, std::optional<double> v) {
  if (v && !(*v >= 0 && *v <= 100)) {
    return InvalidArgument(std::string("idle policy: ") + field + " is " + std::to_string(*v) +
                           "; it must be a percentage between 0 and 100");
  }
  return Status::Ok();
}

Status CheckDuration(const char* field, std::chrono::seconds v, bool allow_zero) {
  if (v.count() < 0 || (!allow_zero && v.count() == 0)) {
    return InvalidArgument(std::string("idle policy: ") + field + " is " +
                           std::to_string(v.count()) + " s; it must be " +
                           (allow_zero ? "0 s or more" : "at least 1 s"));
  }
  return Status::Ok();
}

}  // namespace

Status IdlePolicy::Validate() const {
  ST_RETURN_IF_ERROR(CheckDuration("idle_after", idle_after, true));
  ST_RETURN_IF_ERROR(CheckPercent("max_cpu_percent", max_cpu_percent));
  ST_RETURN_IF_ERROR(CheckPercent("max_cpu_pressure_percent", max_cpu_pressure_percent));
  ST_RETURN_IF_ERROR(CheckPercent("max_io_pressure_percent", max_io_pressure_percent));
  ST_RETURN_IF_ERROR(CheckPercent("max_memory_pressure_percent", max_memory_pressure_percent));
  ST_RETURN_IF_ERROR(CheckPercent("max_disk_busy_percent", max_disk_busy_percent));
  if (max_network_bytes_per_sec && !(*max_network_bytes_per_sec >= 0)) {
    return InvalidArgument("idle policy: max_network_bytes_per_sec must be 0 or more");
  }
  ST_RETURN_IF_ERROR(CheckDuration("settle", settle, true));
  ST_RETURN_IF_ERROR(CheckDuration("load_grace", load_grace, true));
  ST_RETURN_IF_ERROR(CheckDuration("resume_delay", resume_delay, true));
  ST_RETURN_IF_ERROR(CheckDuration("check_interval_idle", check_interval_idle, false));
  ST_RETURN_IF_ERROR(CheckDuration("check_interval_busy", check_interval_busy, false));
  return Status::Ok();
}

void IdlePolicy::IgnoreLoad() {
  max_cpu_percent = 100;
  max_cpu_pressure_percent.reset();
  max_io_pressure_percent.reset();
  max_memory_pressure_percent.reset();
  max_disk_busy_percent = 100;
  max_network_bytes_per_sec.reset();
}

}  // namespace sparetime::scheduler
