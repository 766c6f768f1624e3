// UserTerminals (see user_terminals.h): struct utmp records from the reader's bytes.
#include "user_terminals.h"

#include <utmp.h>

#include <cstring>

namespace sparetime::scheduler {
namespace {

bool SafeLine(std::string_view line) {
  return !line.empty() && line.front() != '/' && line.front() != ':' &&
         line.find("..") == std::string_view::npos;
}

}  // namespace

Result<std::optional<std::vector<std::string>>> UserTerminals(const SystemReader& reader,
                                                              const std::string& utmp_path) {
  ST_ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader.ReadFileIfExists(utmp_path));
  if (!bytes) return std::optional<std::vector<std::string>>();
  if (bytes->size() % sizeof(struct utmp) != 0) {
    return Corruption(reader.HostPath(utmp_path) + " is " + std::to_string(bytes->size()) +
                      " bytes, not a whole number of " + std::to_string(sizeof(struct utmp)) +
                      "-byte utmp records; it is not a utmp file (terminal idle times are "
                      "skipped)");
  }
  std::vector<std::string> lines;
  for (size_t off = 0; off < bytes->size(); off += sizeof(struct utmp)) {
    struct utmp entry;
    std::memcpy(&entry, bytes->data() + off, sizeof entry);
    if (entry.ut_type != USER_PROCESS) continue;
    std::string line(entry.ut_line, strnlen(entry.ut_line, sizeof entry.ut_line));
    if (SafeLine(line)) lines.push_back(std::move(line));
  }
  return std::optional<std::vector<std::string>>(std::move(lines));
}

}  // namespace sparetime::scheduler
