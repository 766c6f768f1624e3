// OwnCgroupDir: the agent's own cgroup v2 directory, for sensors that subtract
// the agent's share (PSI). Internal to the scheduler library.
#ifndef SPARETIME_SCHEDULER_OWN_CGROUP_H_
#define SPARETIME_SCHEDULER_OWN_CGROUP_H_

#include <optional>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

// "/sys/fs/cgroup/<path>" from the "0::<path>" line of /proc/self/cgroup;
// nullopt when there is no cgroup v2 line or the path is the root "/" (whose
// numbers are the system's own, so subtracting them would hide everyone).
Result<std::optional<std::string>> OwnCgroupDir(const SystemReader& reader);

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_OWN_CGROUP_H_
