// LowerCurrentThreadPriority: ioprio_set (no glibc wrapper), setpriority on
// the thread id, sched_setscheduler(0) — all per thread on Linux.
#include "sparetime/scheduler/job_priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ioprio_abi.h"

namespace sparetime::scheduler {
namespace {

constexpr int kNiceLowest = 19;

void Refused(PriorityReport* report, const char* what, int err) {
  report->refused.push_back(std::string(what) + ": " + std::strerror(err));
}

}  // namespace

std::string PriorityReport::Describe() const {
  std::string out;
  auto add = [&out](bool on, const char* what) {
    if (on) out += (out.empty() ? "" : ", ") + std::string(what);
  };
  add(io_idle, "I/O class idle");
  add(nice_19, "nice 19");
  add(sched_idle, "SCHED_IDLE");
  if (out.empty()) out = "normal priority";
  for (size_t i = 0; i < refused.size(); ++i) out += (i == 0 ? "; not set: " : ", ") + refused[i];
  return out;
}

PriorityReport LowerCurrentThreadPriority() {
  PriorityReport report;
  // who = 0: the calling thread.
  if (::syscall(SYS_ioprio_set, ioprio::kWhoProcess, 0, ioprio::Value(ioprio::kClassIdle, 0)) ==
      0) {
    report.io_idle = true;
  } else {
    Refused(&report, "I/O class idle", errno);
  }
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kNiceLowest) == 0) {
    report.nice_19 = true;
  } else {
    Refused(&report, "nice 19", errno);
  }
  struct sched_param param {};
  if (::sched_setscheduler(0, SCHED_IDLE, &param) == 0) {
    report.sched_idle = true;
  } else {
    Refused(&report, "SCHED_IDLE", errno);
  }
  return report;
}

}  // namespace sparetime::scheduler
