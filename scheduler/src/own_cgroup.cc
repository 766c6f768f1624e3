// OwnCgroupDir (see own_cgroup.h).
#include "own_cgroup.h"

#include "text_util.h"

namespace sparetime::scheduler {

Result<std::optional<std::string>> OwnCgroupDir(const SystemReader& reader) {
  ST_ASSIGN_OR_RETURN(std::optional<std::string> text,
                      reader.ReadFileIfExists("/proc/self/cgroup"));
  if (!text) return std::optional<std::string>();
  for (std::string_view line : SplitLines(*text)) {
    if (line.substr(0, 3) != "0::") continue;
    std::string_view path = TrimSpace(line.substr(3));
    if (path.empty() || path == "/" || path.front() != '/') return std::optional<std::string>();
    return std::optional<std::string>("/sys/fs/cgroup" + std::string(path));
  }
  return std::optional<std::string>();
}

}  // namespace sparetime::scheduler
