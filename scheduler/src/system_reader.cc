// SystemReader: root-relative file access for the sensors (see header).
#include "sparetime/scheduler/system_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace sparetime::scheduler {
namespace {

std::chrono::system_clock::time_point ToTimePoint(const struct timespec& ts) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

SystemReader::SystemReader(std::string root) : root_(std::move(root)) {
  while (!root_.empty() && root_.back() == '/') root_.pop_back();
}

std::string SystemReader::HostPath(std::string_view path) const {
  std::string out = root_;
  if (path.empty() || path.front() != '/') out += '/';
  out += path;
  return out;
}

Result<std::string> SystemReader::ReadFile(std::string_view path) const {
  return ReadFileToString(HostPath(path));
}

Result<std::optional<std::string>> SystemReader::ReadFileIfExists(std::string_view path) const {
  Result<std::string> r = ReadFile(path);
  if (r.ok()) return std::optional<std::string>(std::move(r).value());
  if (r.error().code() == ErrorCode::kNotFound) return std::optional<std::string>();
  return r.error();
}

Result<FileTimes> SystemReader::Stat(std::string_view path) const {
  std::string host = HostPath(path);
  struct stat st {};
  if (::stat(host.c_str(), &st) != 0) return ErrnoStatus("stat " + host, errno);
  return FileTimes{ToTimePoint(st.st_atim), ToTimePoint(st.st_mtim)};
}

bool SystemReader::Exists(std::string_view path) const {
  std::string host = HostPath(path);
  struct stat st {};
  return ::stat(host.c_str(), &st) == 0;
}

Result<std::vector<std::string>> SystemReader::ListDir(std::string_view path) const {
  std::string host = HostPath(path);
  ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(host, O_RDONLY | O_DIRECTORY));
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(fd.get()));
  if (!dir) return ErrnoStatus("fdopendir " + host, errno);
  fd.release();  // the DIR owns it now
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const struct dirent* e = ::readdir(dir.get());
    if (e == nullptr) {
      if (errno != 0) return ErrnoStatus("readdir " + host, errno);
      break;
    }
    std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<Fd> SystemReader::OpenForPolling(std::string_view path) const {
  return OpenFile(HostPath(path), O_RDONLY | O_NONBLOCK);
}

}  // namespace sparetime::scheduler
