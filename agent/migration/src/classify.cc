// Stage-1 classification of mappings and fds (see classify.h). The refusal
// list follows docs/migration.md "What is refused".
#include "classify.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>

namespace sparetime::migration {
namespace {

bool StartsWith(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }
bool EndsWith(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// The character devices a restore can simply reopen by path.
bool IsReopenableDevice(dev_t rdev) {
  if (major(rdev) != 1) return false;
  switch (minor(rdev)) {
    case 3:  // null
    case 5:  // zero
    case 7:  // full
    case 8:  // random
    case 9:  // urandom
      return true;
    default:
      return false;
  }
}

std::string AnonInodeName(const std::string& link) {
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"[eventfd]", "an eventfd"},   {"[eventpoll]", "an epoll instance"}, {"[signalfd]", "a signalfd"},
      {"[timerfd]", "a timerfd"},    {"inotify", "an inotify instance"},   {"[fanotify]", "a fanotify instance"},
      {"[pidfd]", "a pidfd"},        {"[io_uring]", "an io_uring"},        {"[userfaultfd]", "a userfaultfd"},
      {"[perf_event]", "a perf event"},
  };
  for (auto [suffix, name] : kNames)
    if (EndsWith(link, suffix)) return std::string(name);
  return "an anonymous-inode file";
}

Status Refuse(std::string what) { return FailedPrecondition(std::move(what)); }

}  // namespace

Result<VmaClass> ClassifyVma(const Vma& vma) {
  const std::string& p = vma.path;
  const std::string where = "mapping " + vma.Describe();
  if (p.empty()) return vma.shared ? VmaClass::kSharedAnon : VmaClass::kPrivateAnon;
  if (p == "[heap]" || p == "[stack]") return VmaClass::kPrivateAnon;
  if (p == "[vdso]" || p == "[vvar]" || p == "[vvar_vclock]") return VmaClass::kVdsoArea;
  if (p == "[vsyscall]") return VmaClass::kSkip;
  if (StartsWith(p, "[anon:")) return vma.shared ? VmaClass::kSharedAnon : VmaClass::kPrivateAnon;
  if (StartsWith(p, "[anon_shmem:")) return VmaClass::kSharedAnon;
  if (StartsWith(p, "[")) return Refuse(where + ": unknown kernel mapping, stage 1 cannot recreate it");
  if (p == "/dev/zero (deleted)" && vma.shared) return VmaClass::kSharedAnon;
  if (StartsWith(p, "/SYSV")) return Refuse(where + ": System V shared memory cannot be moved in stage 1");
  if (StartsWith(p, "/memfd:")) return Refuse(where + ": memfd mappings cannot be moved in stage 1");
  if (EndsWith(p, " (deleted)"))
    return Refuse(where + ": the mapped file was deleted; stage 1 moves only files that still exist by path");
  if (StartsWith(p, "anon_inode:")) return Refuse(where + ": a mapping of " + AnonInodeName(p) + " cannot be moved");
  if (p[0] != '/') return Refuse(where + ": unrecognised mapping name");
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return ErrnoStatus(where + ": stat", errno);
  if (!S_ISREG(st.st_mode))
    return Refuse(where + ": maps a device or special file; only regular files can be re-mapped");
  return vma.shared ? VmaClass::kSharedFile : VmaClass::kPrivateFile;
}

Result<FdEntry::Kind> ClassifyFd(const std::string& proc_dir, int fd, const std::string& link) {
  const std::string where = "fd " + std::to_string(fd) + " (" + link + ")";
  if (StartsWith(link, "pipe:[")) {
    ST_ASSIGN_OR_RETURN(FdInfo info, ReadFdInfo(proc_dir, fd));
    return (info.flags & O_ACCMODE) == O_WRONLY ? FdEntry::Kind::kPipeWrite : FdEntry::Kind::kPipeRead;
  }
  if (StartsWith(link, "socket:["))
    return Refuse(where + " is a socket; sockets cannot be moved in stage 1 (redirect it to a file)");
  if (StartsWith(link, "anon_inode:"))
    return Refuse(where + " is " + AnonInodeName(link) + ", which stage 1 cannot move");
  if (StartsWith(link, "pidfd:")) return Refuse(where + " is a pidfd, which stage 1 cannot move");
  if (StartsWith(link, "/memfd:")) return Refuse(where + " is a memfd, which stage 1 cannot move");
  if (EndsWith(link, " (deleted)"))
    return Refuse(where + " is a deleted file; stage 1 reopens files by path, so they must still exist");
  if (link.empty() || link[0] != '/') return Refuse(where + " is of a kind stage 1 cannot move");
  struct stat st {};
  const std::string fd_path = proc_dir + "/fd/" + std::to_string(fd);
  if (::stat(fd_path.c_str(), &st) != 0) return ErrnoStatus("stat " + fd_path, errno);
  if (S_ISREG(st.st_mode)) return FdEntry::Kind::kFile;
  if (S_ISCHR(st.st_mode) && IsReopenableDevice(st.st_rdev)) return FdEntry::Kind::kDevice;
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
    return Refuse(where + " is a device (" + std::to_string(major(st.st_rdev)) + ":" +
                  std::to_string(minor(st.st_rdev)) +
                  "); only /dev/null, zero, full, random and urandom are reopened (redirect terminals to files)");
  if (S_ISDIR(st.st_mode)) return FdEntry::Kind::kDirectory;
  if (S_ISFIFO(st.st_mode)) return Refuse(where + " is a named pipe, which stage 1 cannot move");
  return Refuse(where + " is a special file stage 1 cannot move");
}

}  // namespace sparetime::migration
