// Job thread priority: background work runs at the lowest CPU and I/O
// priority the kernel offers, so a foreground program on the same CPU or
// disk is served first even while a job is running.
//
// LowerCurrentThreadPriority() sets, for the calling thread (threads it
// starts afterwards inherit all three):
//  - I/O class idle (ioprio_set IOPRIO_CLASS_IDLE): the disk serves the
//    thread only when no one else asks. Honoured by the BFQ and mq-deadline
//    (Linux >= 5.14) schedulers; "none" ignores it;
//  - nice 19 (setpriority on the thread id);
//  - SCHED_IDLE where allowed: runs only when a CPU has nothing else to do.
// Each step is best effort: what was refused is reported (a container's
// seccomp profile may forbid ioprio_set or SCHED_IDLE), never fatal.
//
// Thread safety: acts on the calling thread only.
#ifndef SPARETIME_SCHEDULER_JOB_PRIORITY_H_
#define SPARETIME_SCHEDULER_JOB_PRIORITY_H_

#include <string>
#include <vector>

namespace sparetime::scheduler {

struct PriorityReport {
  bool io_idle = false;
  bool nice_19 = false;
  bool sched_idle = false;
  std::vector<std::string> refused;  // "SCHED_IDLE: Operation not permitted"

  // "I/O class idle, nice 19, SCHED_IDLE" (then "; not set: ..." for refusals).
  std::string Describe() const;
};

PriorityReport LowerCurrentThreadPriority();

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_JOB_PRIORITY_H_
