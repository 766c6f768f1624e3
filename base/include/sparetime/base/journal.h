// Log lines for journald: a syslog priority and structured fields.
//
// sparetimed logs each line either with sd_journal_sendv (when its stderr is
// the journal: JOURNAL_STREAM), carrying MESSAGE=, PRIORITY=,
// SYSLOG_IDENTIFIER= and the fields JOB=, DEVICE=, PEER= that are set, or on
// stderr as "<N>ident: message", the sd-daemon(3) prefix journald and
// systemd read as the priority. `journalctl -p err` then shows errors only.
//
// Invariants: a line is one line (newlines in the message become spaces);
// a field is present only when set; the priority is a syslog level (0..7).
#ifndef SPARETIME_BASE_JOURNAL_H_
#define SPARETIME_BASE_JOURNAL_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sparetime {

// syslog(3) levels, the values of sd-daemon.h's SD_ERR etc.
enum class Priority { kErr = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

struct LogFields {
  std::string job;     // JOB=     e.g. "backup /dev/vg0/root", "verify"
  std::string device;  // DEVICE=  the device a job reads
  std::string peer;    // PEER=    the peer agent concerned
};

// "<6>sparetimed: message" (no trailing newline).
std::string JournalLine(Priority priority, std::string_view ident, std::string_view message);

// The journal fields of one entry, "NAME=value" each, in this order:
// MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, then JOB, DEVICE, PEER when set.
std::vector<std::string> JournalFields(Priority priority, std::string_view ident,
                                       std::string_view message, const LogFields& fields);

using LogFn = std::function<void(Priority, const std::string& message, const LogFields& fields)>;

}  // namespace sparetime

#endif  // SPARETIME_BASE_JOURNAL_H_
