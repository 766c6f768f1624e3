// Journal lines and fields (see journal.h).
#include "sparetime/base/journal.h"

namespace sparetime {

namespace {

std::string OneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

std::string JournalLine(Priority priority, std::string_view ident, std::string_view message) {
  return "<" + std::to_string(static_cast<int>(priority)) + ">" + std::string(ident) + ": " +
         OneLine(message);
}

std::vector<std::string> JournalFields(Priority priority, std::string_view ident,
                                       std::string_view message, const LogFields& fields) {
  std::vector<std::string> out = {
      "MESSAGE=" + OneLine(message),
      "PRIORITY=" + std::to_string(static_cast<int>(priority)),
      "SYSLOG_IDENTIFIER=" + std::string(ident),
  };
  if (!fields.job.empty()) out.push_back("JOB=" + OneLine(fields.job));
  if (!fields.device.empty()) out.push_back("DEVICE=" + OneLine(fields.device));
  if (!fields.peer.empty()) out.push_back("PEER=" + OneLine(fields.peer));
  return out;
}

}  // namespace sparetime
