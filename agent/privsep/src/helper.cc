// The privileged helper's side: the policy check, the open, the serve loop
// and the fork (see helper.h for the invariants).
#include "sparetime/privsep/helper.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "privsep_io.h"

namespace sparetime::privsep {

namespace {

bool SameObject(const struct stat& a, const struct stat& b) {
  if (S_ISBLK(a.st_mode) && S_ISBLK(b.st_mode)) return a.st_rdev == b.st_rdev;
  if (S_ISREG(a.st_mode) && S_ISREG(b.st_mode)) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
  }
  return false;
}

Status CheckPathForm(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return PermissionDenied("refused \"" + path +
                            "\": name the device by its absolute path (/dev/...)");
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (part == "." || part == "..") {
      return PermissionDenied("refused " + path +
                              ": a path with \".\" or \"..\" components; name the device by "
                              "the path listed in [backup] devices");
    }
    start = end + 1;
  }
  return Status::Ok();
}

std::string NotListed(const std::string& path) {
  return "refused " + path +
         ": not among the devices this host lets sparetimed read; list it in [backup] devices "
         "of sparetime.conf, then systemctl reload sparetime";
}

Result<Fd> OpenChecked(const std::string& resolved, const std::string& path, int extra,
                       const struct stat& want) {
  // O_NONBLOCK: a node swapped for a FIFO after the check must not hang the
  // helper; cleared again below.
  const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | extra;
  int fd = ::open(resolved.c_str(), flags | O_NOATIME);
  // EPERM: O_NOATIME on a file root does not own, without CAP_FOWNER.
  if (fd < 0 && errno == EPERM) fd = ::open(resolved.c_str(), flags);
  if (fd < 0) return ErrnoStatus("open " + path, errno);
  Fd owned(fd);
  struct stat got;
  if (::fstat(fd, &got) != 0) return ErrnoStatus("fstat " + path, errno);
  if (!SameObject(got, want)) {
    return PermissionDenied("refused " + path + ": it changed while being opened");
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    return ErrnoStatus("fcntl " + path, errno);
  }
  return owned;
}

}  // namespace

Result<DeviceFds> OpenAllowedDevice(const std::string& path, bool direct,
                                    const std::vector<std::string>& allowed) {
  ST_RETURN_IF_ERROR(CheckPathForm(path));
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    int err = errno;
    if (err == ENOENT) return NotFound(path + " does not exist");
    return ErrnoStatus("resolving " + path, err);
  }
  const std::string resolved = buf;
  struct stat want;
  if (::stat(resolved.c_str(), &want) != 0) return ErrnoStatus("stat " + path, errno);
  if (!S_ISBLK(want.st_mode) && !S_ISREG(want.st_mode)) {
    return PermissionDenied("refused " + path + ": not a block device or image file");
  }
  bool listed = false;
  for (const std::string& a : allowed) {
    char abuf[PATH_MAX];
    struct stat st;
    if (::realpath(a.c_str(), abuf) == nullptr || ::stat(abuf, &st) != 0) continue;
    if (SameObject(st, want)) {
      listed = true;
      break;
    }
  }
  if (!listed) return PermissionDenied(NotListed(path));
  DeviceFds out;
  ST_ASSIGN_OR_RETURN(out.fd, OpenChecked(resolved, path, 0, want));
  if (direct) {
    Result<Fd> d = OpenChecked(resolved, path, O_DIRECT, want);
    if (d.ok()) {
      out.direct_fd = std::move(*d);
    } else if (d.status().code() != ErrorCode::kInvalidArgument) {
      return d.status();  // EINVAL: no O_DIRECT here; buffered reads only
    }
  }
  return out;
}

void ServeHelper(Fd socket, const HelperPolicy& policy) {
  auto log = [&policy](int priority, const std::string& line) {
    if (policy.log) policy.log(priority, line);
  };
  std::vector<std::byte> buf(kMaxMessage + 1);
  for (;;) {
    Result<size_t> got = detail::ReceiveMessage(socket.get(), buf, nullptr);
    if (!got.ok()) {
      if (got.status().code() == ErrorCode::kUnavailable) return;  // the daemon closed its end
      log(3, "privileged helper: " + got.status().message());
      if (got.status().code() != ErrorCode::kInvalidArgument) return;
      (void)detail::SendMessage(socket.get(),
                                EncodeReply({got.status().code(), 0, got.status().message()}), {});
      continue;
    }
    Result<Request> req = DecodeRequest(std::span(buf).first(*got));
    Reply reply;
    std::vector<int> fds;
    DeviceFds opened;
    if (!req.ok()) {
      log(4, "privileged helper: malformed request refused: " + req.status().message());
      reply = {req.status().code(), 0, req.status().message()};
    } else if (req->command == Command::kOpenDeviceRo) {
      Result<std::vector<std::string>> allowed =
          policy.allowed_devices ? policy.allowed_devices()
                                 : Result<std::vector<std::string>>(std::vector<std::string>{});
      Result<DeviceFds> r =
          allowed.ok() ? OpenAllowedDevice(req->arg, (req->flags & kFlagDirect) != 0, *allowed)
                       : Result<DeviceFds>(allowed.status().WithContext(
                             "refused " + req->arg + ": the device policy cannot be read"));
      if (r.ok()) {
        opened = std::move(*r);
        fds.push_back(opened.fd.get());
        if (opened.direct_fd.valid()) fds.push_back(opened.direct_fd.get());
        reply.fd_count = static_cast<uint8_t>(fds.size());
        log(6, "privileged helper: OPEN_DEVICE_RO " + req->arg + " granted");
      } else {
        log(4, "privileged helper: OPEN_DEVICE_RO " + r.status().message());
        reply = {r.status().code(), 0, r.status().message()};
      }
    } else {
      std::string text = std::string(CommandName(req->command)) +
                         " is not implemented in this version of sparetimed";
      log(4, "privileged helper: " + text);
      reply = {ErrorCode::kFailedPrecondition, 0, text};
    }
    if (reply.text.size() > kMaxText) reply.text.resize(kMaxText);
    if (Status s = detail::SendMessage(socket.get(), EncodeReply(reply), fds); !s.ok()) {
      if (s.code() == ErrorCode::kUnavailable) return;
      log(3, "privileged helper: " + s.message());
    }
  }
}

Result<HelperProcess> StartHelper(const HelperPolicy& policy) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoStatus("socketpair for the privileged helper", errno);
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    return ErrnoStatus("fork of the privileged helper", err);
  }
  if (pid == 0) {
    ::close(sv[0]);
    // Only stdio and the socket stay open.
    if (sv[1] > 3) ::close_range(3, static_cast<unsigned>(sv[1]) - 1, 0);
    ::close_range(static_cast<unsigned>(sv[1]) + 1, ~0u, 0);
    ::prctl(PR_SET_NAME, "sparetime-priv", 0, 0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (::getppid() != parent) ::_exit(0);
    // systemctl stop signals every process of the unit: the helper ends
    // when sparetimed closes its end, never before it.
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGPIPE, SIG_IGN);
    ServeHelper(Fd(sv[1]), policy);
    ::_exit(0);
  }
  ::close(sv[1]);
  return HelperProcess{pid, Fd(sv[0])};
}

}  // namespace sparetime::privsep
