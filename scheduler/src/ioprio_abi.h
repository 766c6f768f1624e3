// The ioprio_set/ioprio_get ABI (include/uapi/linux/ioprio.h), spelled out
// here because glibc has no wrapper and the uapi header cannot be included
// from C++ since Linux 6.1.192's headers: its ioprio_value() names a
// parameter `class`. These values are kernel ABI and do not change.
#ifndef SPARETIME_SCHEDULER_IOPRIO_ABI_H_
#define SPARETIME_SCHEDULER_IOPRIO_ABI_H_

namespace sparetime::scheduler::ioprio {

constexpr int kWhoProcess = 1;  // IOPRIO_WHO_PROCESS; who = 0 is the calling thread
constexpr int kClassIdle = 3;   // IOPRIO_CLASS_IDLE
constexpr int kClassShift = 13;

constexpr int Value(int io_class, int level) { return (io_class << kClassShift) | level; }
constexpr int ClassOf(int value) { return value >> kClassShift; }

}  // namespace sparetime::scheduler::ioprio

#endif  // SPARETIME_SCHEDULER_IOPRIO_ABI_H_
