// The unprivileged side of privsep: HelperClient and DropPrivileges (see
// helper.h).
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "privsep_io.h"
#include "sparetime/privsep/helper.h"

namespace sparetime::privsep {

namespace {

Status HelperGone() {
  return Unavailable(
      "the privileged helper is gone (killed or crashed); sparetimed exits and systemd restarts "
      "it");
}

}  // namespace

Result<Reply> HelperClient::CallRaw(std::span<const std::byte> message, std::vector<Fd>* fds) {
  MutexLock l(mu_);
  if (Status s = detail::SendMessage(socket_.get(), message, {}); !s.ok()) {
    return s.code() == ErrorCode::kUnavailable ? HelperGone() : s;
  }
  std::vector<std::byte> buf(kMaxMessage + 1);
  std::vector<Fd> got;
  Result<size_t> n = detail::ReceiveMessage(socket_.get(), buf, &got);
  if (!n.ok()) {
    return n.status().code() == ErrorCode::kUnavailable ? HelperGone() : n.status();
  }
  ST_ASSIGN_OR_RETURN(Reply reply, DecodeReply(std::span(buf).first(*n)));
  if (got.size() != reply.fd_count) {
    return Internal("privsep: the helper announced " + std::to_string(reply.fd_count) +
                    " descriptors and sent " + std::to_string(got.size()));
  }
  if (fds != nullptr) *fds = std::move(got);
  return reply;
}

Result<Reply> HelperClient::Call(const Request& request, std::vector<Fd>* fds) {
  return CallRaw(EncodeRequest(request), fds);
}

Result<DeviceFds> HelperClient::OpenDeviceRo(const std::string& path, bool direct) {
  std::vector<Fd> fds;
  ST_ASSIGN_OR_RETURN(Reply reply, Call({Command::kOpenDeviceRo, direct ? kFlagDirect : uint8_t{0},
                                         path},
                                        &fds));
  if (reply.code != ErrorCode::kOk) return Status(reply.code, reply.text);
  if (fds.empty()) return Internal("privsep: the helper granted " + path + " without a descriptor");
  DeviceFds out;
  out.fd = std::move(fds[0]);
  if (fds.size() > 1) out.direct_fd = std::move(fds[1]);
  return out;
}

bool HelperClient::WaitGone(std::chrono::milliseconds timeout) const {
  struct pollfd p {
    socket_.get(), 0, 0
  };
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  return n > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
}

Status DropPrivileges(const std::string& user) {
  if (::geteuid() != 0) {
    return PermissionDenied("cannot switch to user " + user +
                            ": sparetimed was not started as root (start it as root, as the "
                            "systemd unit does, or leave out --user)");
  }
  std::vector<char> buf(16384);
  struct passwd pw;
  struct passwd* found = nullptr;
  int err = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    if (err != 0) return ErrnoStatus("looking up user " + user, err);
    return NotFound("no user " + user +
                    " on this system: create it (the package does: "
                    "systemd-sysusers /usr/lib/sysusers.d/sparetime.conf)");
  }
  const uid_t uid = pw.pw_uid;
  const gid_t gid = pw.pw_gid;
  if (uid == 0) return InvalidArgument("user " + user + " is root: name an unprivileged user");
  if (::initgroups(pw.pw_name, gid) != 0) return ErrnoStatus("initgroups " + user, errno);
  if (::setresgid(gid, gid, gid) != 0) return ErrnoStatus("setresgid " + user, errno);
  if (::setresuid(uid, uid, uid) != 0) return ErrnoStatus("setresuid " + user, errno);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return ErrnoStatus("PR_SET_NO_NEW_PRIVS", errno);
  }
  // Paranoia, as OpenSSH's permanently_set_uid: root must be out of reach.
  if (::setuid(0) == 0 || (gid != 0 && ::setgid(0) == 0)) {
    return Internal("regained root after dropping to " + user);
  }
  struct __user_cap_header_struct hdr {
    _LINUX_CAPABILITY_VERSION_3, 0
  };
  struct __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return ErrnoStatus("capget", errno);
  for (const auto& d : data) {
    if (d.effective != 0 || d.permitted != 0) {
      return Internal("capabilities left after dropping to " + user);
    }
  }
  return Status::Ok();
}

}  // namespace sparetime::privsep
