// Parsers for the /proc/PID files the checkpoint reads: smaps, status, stat,
// fd/fdinfo. Pure readers: they never touch the process itself.
//
// Every function takes the process directory ("/proc/1234", or a fake tree
// in tests) and returns errors naming the file.
#ifndef SPARETIME_MIGRATION_PROC_FILES_H_
#define SPARETIME_MIGRATION_PROC_FILES_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/status.h"

namespace sparetime::migration {

struct Vma {
  uint64_t start = 0, end = 0;
  int prot = 0;
  bool shared = false;
  uint64_t offset = 0;
  uint64_t inode = 0;
  std::string path;  // as shown in maps ("" for anonymous, "[heap]", "/x (deleted)")
  std::vector<std::string> vm_flags;  // smaps "VmFlags:" mnemonics

  bool HasFlag(std::string_view flag) const;
  std::string Describe() const;  // "7f..-7f.. rw-p /path"
};

// /proc/PID/smaps, in address order.
Result<std::vector<Vma>> ReadSmaps(const std::string& proc_dir);

// /proc/PID/status as "Key" -> "value" (value trimmed).
Result<std::map<std::string, std::string>> ReadStatus(const std::string& proc_dir);

// /proc/PID/stat fields numbered as in proc(5): [1] pid, [2] comm (without
// parentheses), [3] state, ... Index 0 is unused.
Result<std::vector<std::string>> ReadStat(const std::string& proc_dir);

struct FdInfo {
  uint64_t pos = 0;
  int flags = 0;
};
Result<FdInfo> ReadFdInfo(const std::string& proc_dir, int fd);

// The open fd numbers, ascending.
Result<std::vector<int>> ListFds(const std::string& proc_dir);

// The thread IDs of /proc/PID/task, ascending (the leader's is the PID).
Result<std::vector<pid_t>> ListTasks(const std::string& proc_dir);

Result<std::string> ReadLink(const std::string& path);

// Parses an unsigned number in `base`; kCorruption naming `what` otherwise.
Result<uint64_t> ParseU64(std::string_view text, int base, std::string_view what);

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_PROC_FILES_H_
