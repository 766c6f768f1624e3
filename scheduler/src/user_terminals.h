// UserTerminals: the terminal lines of logged-in users, from utmp. Shared by
// the user-activity sensor (tty access times) and the input watcher (inotify
// on those ttys). Internal to the scheduler library.
//
// Invariant: only plain device names under /dev are returned (no "..", no
// leading '/', no X displays like ":0"), so a forged utmp cannot make the
// callers stat or watch other files.
#ifndef SPARETIME_SCHEDULER_USER_TERMINALS_H_
#define SPARETIME_SCHEDULER_USER_TERMINALS_H_

#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

// ut_line of each USER_PROCESS record ("pts/3", "tty1"), in file order;
// nullopt when the utmp file does not exist; kCorruption when it is not a
// whole number of struct utmp records.
Result<std::optional<std::vector<std::string>>> UserTerminals(const SystemReader& reader,
                                                              const std::string& utmp_path);

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_USER_TERMINALS_H_
