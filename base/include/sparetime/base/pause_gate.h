// PauseGate: where a long job (a backup's device reads, later scrub and
// repair) lets whoever controls it hold it: the scheduler's JobController
// closes the gate while the box is busy and rate-limits the bytes that pass.
//
// A job calls WaitWhilePaused(bytes) before each unit of I/O (a chunk read).
// OK: go on and do it. kCancelled: the controller is stopping; the job should
// checkpoint what is done and return (it resumes from there next time).
//
// Thread safety: implementations may be called from any job thread.
#ifndef SPARETIME_BASE_PAUSE_GATE_H_
#define SPARETIME_BASE_PAUSE_GATE_H_

#include <cstdint>

#include "sparetime/base/status.h"

namespace sparetime {

class PauseGate {
 public:
  virtual ~PauseGate() = default;
  // Blocks while the job is paused and until `bytes` fit the byte-rate limit.
  virtual Status WaitWhilePaused(uint64_t bytes) = 0;
};

}  // namespace sparetime

#endif  // SPARETIME_BASE_PAUSE_GATE_H_
