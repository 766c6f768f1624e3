// sparetimed's log sink: one entry per call, with a journald priority and
// the structured fields JOB=, DEVICE=, PEER= (base/journal.h). When stderr
// is the journal (systemd sets JOURNAL_STREAM to its device:inode) the entry
// goes through sd_journal_sendv with its fields; otherwise it is one
// "<N>sparetimed: message" line on stderr (systemd reads the prefix as the
// priority; a terminal shows it as is). Thread-safe.
#ifndef SPARETIME_AGENT_DAEMON_JOURNAL_LOG_H_
#define SPARETIME_AGENT_DAEMON_JOURNAL_LOG_H_

#include <string>

#include "sparetime/base/journal.h"

namespace sparetime::daemon {

void Log(Priority priority, const std::string& message, const LogFields& fields = {});
inline void LogInfo(const std::string& message) { Log(Priority::kInfo, message); }

// The same sink as a LogFn.
LogFn JournalLog();

}  // namespace sparetime::daemon

#endif  // SPARETIME_AGENT_DAEMON_JOURNAL_LOG_H_
