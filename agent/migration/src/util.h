// Small helpers shared by the migration sources: address formatting and
// /proc paths.
#ifndef SPARETIME_MIGRATION_UTIL_H_
#define SPARETIME_MIGRATION_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace sparetime::migration {

// "0x7f12..." for messages.
inline std::string HexAddr(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

inline std::string ProcDir(pid_t pid, const std::string& root = "/proc") {
  return root + "/" + std::to_string(pid);
}

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_UTIL_H_
