// The documented exit codes of the `sparetime` command (docs/cli.md), and
// the mapping from a failed Status to one of them.
#ifndef SPARETIME_AGENT_CLI_EXIT_CODES_H_
#define SPARETIME_AGENT_CLI_EXIT_CODES_H_

#include "sparetime/base/status.h"

namespace sparetime::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,        // anything not listed below (I/O errors, bugs)
  kExitUsage = 2,          // bad command line or option value
  kExitWrongPassphrase = 3,
  kExitNoRepository = 4,   // repository missing, not a repository, or damaged config/key
  kExitDevice = 5,         // device or target missing, unreadable, read-only or too small
  kExitCorruption = 6,     // stored data failed its checks (verify, restore)
  kExitNoSpace = 7,        // disk full; what was done is kept, rerun to continue
  kExitInterrupted = 8,    // stopped by a signal; rerun to resume
  kExitConfig = 9,         // configuration file missing or invalid
  kExitUnavailable = 10,   // directory or peers unreachable and nothing cached
};

// Where in a command the failure happened decides between codes that share
// an ErrorCode (a missing repository vs a missing device).
enum class Stage { kConfig, kOpenRepository, kWork };

int ExitCodeFor(const Status& status, Stage stage);

// Prints "sparetime: <message>" on stderr and returns ExitCodeFor(). A
// disk-full message that gives no next step gets the documented one.
int Fail(const Status& status, Stage stage);
// The same with the exit code decided by the caller.
int FailAs(const Status& status, ExitCode code);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_EXIT_CODES_H_
