// Restore: recreate a checkpointed process on this host with its old PID.
//
// The helper clone3()s a child with set_tid = image.pid (kAlreadyExists when
// that PID is taken), which execs the libc-free restore stub under
// PTRACE_TRACEME. Driven by injected syscalls, the stub drops its own
// mappings, gets the vDSO at the image's address, and receives the image's
// mappings, pages, mm fields, files, credentials, signal state, itimers, rseq,
// tid address and robust list; then registers + xstate, and the helper
// detaches. Refused up front, with the reason: a different vDSO or xstate
// layout, a changed or missing file.
//
// Invariants: on failure the half-built process is killed and reaped, nothing
// else is touched. The restored process is a child of the calling process
// (waitpid works on it). Thread affinity as for FrozenProcess.
#ifndef SPARETIME_MIGRATION_RESTORE_H_
#define SPARETIME_MIGRATION_RESTORE_H_

#include <sys/types.h>

#include <chrono>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/migration/image.h"

namespace sparetime::migration {

struct RestoreOptions {
  // The sparetime-restore-stub executable; empty means the built-in default.
  std::string stub_path;
  // Refuse files (mapped, open, the executable) whose size or mtime changed.
  bool check_files = true;
  // Bound on every wait for the restored process.
  std::chrono::milliseconds timeout{10000};
};

// Returns the PID of the running restored process (== image.pid).
Result<pid_t> Restore(const ProcessImage& image, const RestoreOptions& options = {});

// The stub path used when RestoreOptions::stub_path is empty: $SPARETIME_RESTORE_STUB
// when set; else <prefix>/lib/sparetime/sparetime-restore-stub next to the
// running executable's <prefix>/bin or sbin (the installed layout) when it
// exists; else the build tree's copy.
std::string DefaultStubPath();

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_RESTORE_H_
