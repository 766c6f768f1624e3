// Dump of fds and process attributes read from outside the process:
// /proc/PID/{fd,fdinfo,stat,status,auxv,exe,cwd,personality,comm},
// kcmp (shared open file descriptions) and pidfd_getfd + tee (pipe contents,
// copied without consuming them).
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <sstream>

#include "classify.h"
#include "dump.h"
#include "sparetime/migration/credentials.h"
#include "proc_files.h"
#include "sparetime/base/fd.h"
#include "util.h"

namespace sparetime::migration {
namespace {

bool SameDescription(pid_t pid, int fd1, int fd2) {
  return ::syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd1, fd2) == 0;
}

// The unread bytes of the pipe whose read end is `read_fd` in `pid`.
Result<PipeContents> DumpPipe(pid_t pid, int read_fd, uint64_t pipe_id) {
  ST_ASSIGN_OR_RETURN(Fd end, DuplicateFdOf(pid, static_cast<uint64_t>(read_fd)));
  PipeContents p;
  p.pipe_id = pipe_id;
  int cap = ::fcntl(end.get(), F_GETPIPE_SZ);
  if (cap < 0) return ErrnoStatus("F_GETPIPE_SZ on fd " + std::to_string(read_fd), errno);
  p.capacity = static_cast<uint32_t>(cap);
  int queued = 0;
  if (::ioctl(end.get(), FIONREAD, &queued) != 0) return ErrnoStatus("FIONREAD on fd " + std::to_string(read_fd), errno);
  if (queued == 0) return p;
  int copy[2];
  if (::pipe2(copy, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoStatus("pipe2", errno);
  Fd copy_r(copy[0]), copy_w(copy[1]);
  if (::fcntl(copy_w.get(), F_SETPIPE_SZ, cap) < 0) return ErrnoStatus("F_SETPIPE_SZ", errno);
  ssize_t n = ::tee(end.get(), copy_w.get(), static_cast<size_t>(queued), SPLICE_F_NONBLOCK);
  if (n != queued)
    return IoError("could not copy the " + std::to_string(queued) + " bytes buffered in pipe fd " +
                   std::to_string(read_fd) + " of process " + std::to_string(pid) + " (tee returned " +
                   std::to_string(n) + ")");
  p.data.resize(static_cast<size_t>(n));
  if (::read(copy_r.get(), p.data.data(), p.data.size()) != n) return IoError("short read from the pipe copy");
  return p;
}


}  // namespace

Status DumpFiles(pid_t pid, const std::string& proc_dir, ProcessImage& image) {
  ST_ASSIGN_OR_RETURN(std::vector<int> fds, ListFds(proc_dir));
  std::map<uint64_t, int> pipe_readers;  // pipe id -> a read-end fd
  for (int fd : fds) {
    const std::string fd_path = proc_dir + "/fd/" + std::to_string(fd);
    ST_ASSIGN_OR_RETURN(std::string link, ReadLink(fd_path));
    ST_ASSIGN_OR_RETURN(FdEntry::Kind kind, ClassifyFd(proc_dir, fd, link));
    ST_ASSIGN_OR_RETURN(FdInfo info, ReadFdInfo(proc_dir, fd));
    FdEntry e;
    e.fd = fd;
    e.kind = kind;
    e.flags = info.flags;
    for (const FdEntry& earlier : image.fds) {
      if (earlier.kind != FdEntry::Kind::kDup && SameDescription(pid, earlier.fd, fd)) {
        e.kind = FdEntry::Kind::kDup;
        e.dup_of = earlier.fd;
        break;
      }
    }
    if (e.kind == FdEntry::Kind::kFile || e.kind == FdEntry::Kind::kDevice || e.kind == FdEntry::Kind::kDirectory) {
      e.path = link;
      e.offset = info.pos;
      if (e.kind == FdEntry::Kind::kFile) {
        ST_ASSIGN_OR_RETURN(e.file, StatIdentity(fd_path));
      }
    } else if (e.kind == FdEntry::Kind::kPipeRead || e.kind == FdEntry::Kind::kPipeWrite) {
      ST_ASSIGN_OR_RETURN(e.pipe_id, ParseU64(link.substr(6, link.size() - 7), 10, fd_path));
      if (e.kind == FdEntry::Kind::kPipeRead) pipe_readers.try_emplace(e.pipe_id, fd);
    }
    image.fds.push_back(std::move(e));
  }
  for (auto [id, read_fd] : pipe_readers) {
    ST_ASSIGN_OR_RETURN(PipeContents p, DumpPipe(pid, read_fd, id));
    image.pipes.push_back(std::move(p));
  }
  return Status::Ok();
}

Status DumpAttributes(pid_t pid, const std::string& proc_dir, ProcessImage& image) {
  ST_ASSIGN_OR_RETURN(std::vector<std::string> stat, ReadStat(proc_dir));
  auto field = [&](int i) { return ParseU64(stat[static_cast<size_t>(i)], 10, proc_dir + "/stat"); };
  MmFields& mm = image.mm;
  ST_ASSIGN_OR_RETURN(mm.start_code, field(26));
  ST_ASSIGN_OR_RETURN(mm.end_code, field(27));
  ST_ASSIGN_OR_RETURN(mm.start_stack, field(28));
  ST_ASSIGN_OR_RETURN(mm.start_data, field(45));
  ST_ASSIGN_OR_RETURN(mm.end_data, field(46));
  ST_ASSIGN_OR_RETURN(mm.start_brk, field(47));
  ST_ASSIGN_OR_RETURN(mm.arg_start, field(48));
  ST_ASSIGN_OR_RETURN(mm.arg_end, field(49));
  ST_ASSIGN_OR_RETURN(mm.env_start, field(50));
  ST_ASSIGN_OR_RETURN(mm.env_end, field(51));

  ST_ASSIGN_OR_RETURN(std::string auxv, ReadFileToString(proc_dir + "/auxv"));
  image.auxv.assign(reinterpret_cast<const std::byte*>(auxv.data()),
                    reinterpret_cast<const std::byte*>(auxv.data() + auxv.size()));
  ST_ASSIGN_OR_RETURN(image.exe_path, ReadLink(proc_dir + "/exe"));
  ST_ASSIGN_OR_RETURN(image.exe, StatIdentity(proc_dir + "/exe"));
  ST_ASSIGN_OR_RETURN(image.cwd, ReadLink(proc_dir + "/cwd"));
  if (image.cwd.ends_with(" (deleted)"))
    return FailedPrecondition("process " + std::to_string(pid) + "'s working directory " + image.cwd +
                              " was deleted; it cannot be restored");
  ST_ASSIGN_OR_RETURN(std::string comm, ReadFileToString(proc_dir + "/comm"));
  image.comm = comm.substr(0, comm.find('\n'));
  ST_ASSIGN_OR_RETURN(std::string pers, ReadFileToString(proc_dir + "/personality"));
  ST_ASSIGN_OR_RETURN(uint64_t pers_value, ParseU64(pers.substr(0, pers.find('\n')), 16, proc_dir + "/personality"));
  image.personality = static_cast<uint32_t>(pers_value);

  ST_ASSIGN_OR_RETURN(auto status, ReadStatus(proc_dir));
  ST_ASSIGN_OR_RETURN(uint64_t umask, ParseU64(status["Umask"], 8, proc_dir + "/status Umask"));
  image.umask = static_cast<uint32_t>(umask);
  ST_RETURN_IF_ERROR(ParseCredentials(status, image.creds));
  // Best effort: a local checkpoint needs no names; a migration checks them
  // before it freezes (NameCredentials) and the target requires them.
  if (auto names = NameCredentials(image.creds); names.ok()) image.names = std::move(*names);

  utsname u{};
  if (::uname(&u) == 0) image.kernel_release = u.release;
  return Status::Ok();
}

}  // namespace sparetime::migration
