// Checkpoint: freeze a running single-threaded process with ptrace and save
// it into a ProcessImage.
//
// Sequence: Preflight (read-only /proc checks: refuses, without stopping
// anything, what stage 1 cannot move) -> PTRACE_SEIZE + PTRACE_INTERRUPT ->
// Preflight again on the stopped process -> Dump (registers, memory,
// injected queries for signal handlers, itimers, brk...) -> Kill or Resume.
//
// Invariants: the source is never left half-modified. Every injected
// syscall only reads state (plus one scratch page, unmapped again); on any
// failure, or on Resume(), the registers, signal mask and memory are put back
// and the process continues exactly where it was. An interrupted syscall is
// re-executed when the source resumes, and is rewritten in the image so the
// restored process re-executes it too (nanosleep-style restart blocks cannot
// move: the restored call returns EINTR, as in CRIU).
//
// Thread affinity: ptrace binds a tracee to the tracing *thread*: a
// FrozenProcess must be used and destroyed on the thread that created it.
#ifndef SPARETIME_MIGRATION_CHECKPOINT_H_
#define SPARETIME_MIGRATION_CHECKPOINT_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "sparetime/base/status.h"
#include "sparetime/migration/image.h"

namespace sparetime::migration {

struct PreflightOptions {
  std::string proc_root = "/proc";  // tests may point this at a fake tree
  // The command named in a refusal ("cannot migrate process N ...").
  std::string command = "checkpoint";
};

// OK when stage 1 can checkpoint `pid`; otherwise kFailedPrecondition naming
// the first obstacle (threads, children, an fd kind, a mapping, seccomp, a
// tracer...). Reads /proc only; never stops or signals the process.
Status Preflight(pid_t pid, const PreflightOptions& options = {});

struct CheckpointOptions {
  // Bound on every wait for the tracee (stop, injected syscall, exit).
  std::chrono::milliseconds timeout{10000};
  // After a successful dump: resume the source (true) or kill it (false).
  bool leave_running = false;
  // Test seam: called with the name of each dump step ("registers",
  // "memory", "signals", "files"...); a non-OK status aborts the dump there.
  std::function<Status(std::string_view step)> step_hook;
};

// A process stopped under ptrace for checkpointing. The destructor resumes it
// unless Kill() or Resume() already ran.
class FrozenProcess {
 public:
  // Preflight, seize, interrupt, wait for the stop, preflight again.
  static Result<FrozenProcess> Freeze(pid_t pid, const CheckpointOptions& options);
  FrozenProcess(FrozenProcess&&) noexcept;
  FrozenProcess& operator=(FrozenProcess&&) noexcept;
  ~FrozenProcess();

  pid_t pid() const;
  // Saves the process, its page store in memory (ProcessImage::pages). On
  // failure the process is still frozen and intact.
  Result<ProcessImage> Dump();
  // The same with the page store streamed to `pages` as it is read (the
  // image's `pages` stay empty): memory use is bounded by the sink.
  Result<ProcessImage> Dump(PageSink& pages);
  // Puts back the registers and signal mask and detaches: it runs on.
  Status Resume();
  // Resume() with a SIGSTOP queued first: the process is left in an ordinary
  // job-control stop (state T) before running another instruction; SIGCONT
  // continues it, SIGKILL ends it.
  Status LeaveStopped();
  // SIGKILLs the process and waits (bounded) until it is gone; when the
  // caller is its parent this also reaps it, freeing the PID.
  Status Kill();

  class Impl;

 private:
  explicit FrozenProcess(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Freeze + Dump, then Kill (or Resume with leave_running). When the dump
// fails the source is resumed and the error returned.
Result<ProcessImage> Checkpoint(pid_t pid, const CheckpointOptions& options = {});

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_CHECKPOINT_H_
