// /proc/PID file parsers (see proc_files.h). Formats per proc(5); unknown
// smaps keys are ignored so newer kernels' extra fields do not break us.
#include "proc_files.h"

#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>
#include <sstream>

#include "sparetime/base/fd.h"
#include "sparetime/base/text.h"

namespace sparetime::migration {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// "start-end perms offset dev inode   path"
Result<Vma> ParseMapsLine(std::string_view line, const std::string& file) {
  Vma v;
  auto bad = [&] { return Corruption(file + ": unparsable mapping line '" + std::string(line) + "'"); };
  size_t dash = line.find('-');
  size_t sp1 = line.find(' ');
  if (dash == std::string_view::npos || sp1 == std::string_view::npos || dash > sp1) return bad();
  ST_ASSIGN_OR_RETURN(v.start, ParseU64(line.substr(0, dash), 16, file));
  ST_ASSIGN_OR_RETURN(v.end, ParseU64(line.substr(dash + 1, sp1 - dash - 1), 16, file));
  std::string_view rest = line.substr(sp1 + 1);
  if (rest.size() < 5) return bad();
  if (rest[0] == 'r') v.prot |= PROT_READ;
  if (rest[1] == 'w') v.prot |= PROT_WRITE;
  if (rest[2] == 'x') v.prot |= PROT_EXEC;
  v.shared = rest[3] == 's';
  rest.remove_prefix(5);
  rest = Trim(rest);
  size_t sp = rest.find(' ');
  if (sp == std::string_view::npos) return bad();
  ST_ASSIGN_OR_RETURN(v.offset, ParseU64(rest.substr(0, sp), 16, file));
  rest = Trim(rest.substr(sp + 1));
  sp = rest.find(' ');  // device
  if (sp == std::string_view::npos) return bad();
  rest = Trim(rest.substr(sp + 1));
  sp = rest.find(' ');
  ST_ASSIGN_OR_RETURN(v.inode, ParseU64(rest.substr(0, sp), 10, file));
  v.path = sp == std::string_view::npos ? "" : std::string(Trim(rest.substr(sp)));
  return v;
}

}  // namespace

bool Vma::HasFlag(std::string_view flag) const {
  return std::find(vm_flags.begin(), vm_flags.end(), flag) != vm_flags.end();
}

std::string Vma::Describe() const {
  std::ostringstream s;
  s << std::hex << start << "-" << end << " " << ((prot & PROT_READ) ? 'r' : '-')
    << ((prot & PROT_WRITE) ? 'w' : '-') << ((prot & PROT_EXEC) ? 'x' : '-') << (shared ? 's' : 'p');
  if (!path.empty()) s << " " << path;
  return s.str();
}

Result<uint64_t> ParseU64(std::string_view text, int base, std::string_view what) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty())
    return Corruption(std::string(what) + ": expected a number, got '" + std::string(text) + "'");
  return v;
}

Result<std::vector<Vma>> ReadSmaps(const std::string& proc_dir) {
  const std::string file = proc_dir + "/smaps";
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(file));
  std::vector<Vma> vmas;
  for (std::string_view line : SplitLines(text)) {
    if (line.empty()) continue;
    size_t colon = line.find(':');
    size_t space = line.find(' ');
    bool is_header = colon == std::string_view::npos || (space != std::string_view::npos && space < colon);
    if (is_header) {
      ST_ASSIGN_OR_RETURN(Vma v, ParseMapsLine(line, file));
      vmas.push_back(std::move(v));
      continue;
    }
    if (vmas.empty()) return Corruption(file + ": field before the first mapping");
    if (line.substr(0, colon) == "VmFlags") {
      std::istringstream flags{std::string(line.substr(colon + 1))};
      std::string f;
      while (flags >> f) vmas.back().vm_flags.push_back(f);
    }
  }
  return vmas;
}

Result<std::map<std::string, std::string>> ReadStatus(const std::string& proc_dir) {
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(proc_dir + "/status"));
  std::map<std::string, std::string> fields;
  for (std::string_view line : SplitLines(text)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    fields[std::string(line.substr(0, colon))] = std::string(Trim(line.substr(colon + 1)));
  }
  return fields;
}

Result<std::vector<std::string>> ReadStat(const std::string& proc_dir) {
  const std::string file = proc_dir + "/stat";
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(file));
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open)
    return Corruption(file + ": no '(comm)' field");
  std::vector<std::string> fields{"", std::string(Trim(std::string_view(text).substr(0, open))),
                                  text.substr(open + 1, close - open - 1)};
  std::istringstream rest(text.substr(close + 1));
  std::string f;
  while (rest >> f) fields.push_back(f);
  if (fields.size() < 52) return Corruption(file + ": only " + std::to_string(fields.size() - 1) + " fields");
  return fields;
}

Result<FdInfo> ReadFdInfo(const std::string& proc_dir, int fd) {
  const std::string file = proc_dir + "/fdinfo/" + std::to_string(fd);
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(file));
  FdInfo info;
  bool have_pos = false, have_flags = false;
  for (std::string_view line : SplitLines(text)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), value = Trim(line.substr(colon + 1));
    if (key == "pos") {
      ST_ASSIGN_OR_RETURN(info.pos, ParseU64(value, 10, file));
      have_pos = true;
    } else if (key == "flags") {
      ST_ASSIGN_OR_RETURN(uint64_t flags, ParseU64(value, 8, file));
      info.flags = static_cast<int>(flags);
      have_flags = true;
    }
  }
  if (!have_pos || !have_flags) return Corruption(file + ": no pos/flags lines");
  return info;
}

namespace {
Result<std::vector<int>> ListNumbers(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return ErrnoStatus("list " + dir, errno);
  std::vector<int> fds;
  while (dirent* e = ::readdir(d.get())) {
    if (e->d_name[0] == '.') continue;
    ST_ASSIGN_OR_RETURN(uint64_t fd, ParseU64(e->d_name, 10, dir));
    fds.push_back(static_cast<int>(fd));
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}
}  // namespace

Result<std::vector<int>> ListFds(const std::string& proc_dir) { return ListNumbers(proc_dir + "/fd"); }

Result<std::vector<pid_t>> ListTasks(const std::string& proc_dir) { return ListNumbers(proc_dir + "/task"); }

Result<std::string> ReadLink(const std::string& path) {
  std::string buf(4096, '\0');
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n < 0) return ErrnoStatus("readlink " + path, errno);
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace sparetime::migration
