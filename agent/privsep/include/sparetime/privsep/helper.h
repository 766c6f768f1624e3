// Privilege separation, OpenSSH's model: sparetimed starts as root, forks a
// small privileged helper connected by a SOCK_SEQPACKET socketpair, then the
// main process drops to an unprivileged user (DropPrivileges). Everything
// that parses network input, talks LDAP, runs SQLite and zstd runs in the
// unprivileged process; the helper only answers the fixed command set of
// protocol.h, each request checked against the local policy.
//
// Invariants:
//   - The helper opens only what the policy lists: the allowed paths are
//     resolved (realpath, stat) at each request, and a device is the same
//     object when its st_rdev (block devices) or st_dev+st_ino (image files)
//     match. The requested path must be absolute and have no "." or ".."
//     component; it is resolved and checked before any open (opening some
//     device nodes has side effects), and the opened descriptor is checked
//     again with fstat (a path swapped in between is refused).
//   - Every refusal is logged by the helper (priority warning) and answered
//     with kPermissionDenied saying what to list where; the descriptor is
//     never sent then.
//   - The helper serves one request at a time and exits when the
//     unprivileged end closes; it dies with its parent (PR_SET_PDEATHSIG).
//   - A malformed request is answered kInvalidArgument and logged; the
//     helper keeps serving (the socket type keeps message boundaries).
//   - Commands reserved in protocol.h but not implemented answer
//     kFailedPrecondition "not implemented", never success.
//   - HelperClient reports a dead helper as kUnavailable; WaitGone tells the
//     daemon so it can exit non-zero (systemd restarts it).
#ifndef SPARETIME_PRIVSEP_HELPER_H_
#define SPARETIME_PRIVSEP_HELPER_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"
#include "sparetime/privsep/protocol.h"

namespace sparetime::privsep {

// Syslog priorities (3 err, 4 warning, 6 info).
using HelperLog = std::function<void(int priority, const std::string& line)>;

struct HelperPolicy {
  // The devices and image files OPEN_DEVICE_RO may open (sparetime.conf
  // [backup] devices). Called at every request, so a changed file counts at
  // once; an error refuses the request.
  std::function<Result<std::vector<std::string>>()> allowed_devices;
  HelperLog log;
};

struct DeviceFds {
  Fd fd;         // O_RDONLY
  Fd direct_fd;  // O_RDONLY|O_DIRECT; invalid when not asked for or unsupported
};

// The policy decision and the open, without a socket (the helper calls it
// for each OPEN_DEVICE_RO). kPermissionDenied for anything not allowed.
Result<DeviceFds> OpenAllowedDevice(const std::string& path, bool direct,
                                    const std::vector<std::string>& allowed);

// Serves requests on `socket` until the other end closes it (returns then).
void ServeHelper(Fd socket, const HelperPolicy& policy);

struct HelperProcess {
  pid_t pid = -1;
  Fd socket;  // the unprivileged end
};

// Forks the helper (call before any thread starts): the child keeps only
// stdio and its end of the socketpair, asks to die with its parent, serves,
// and _exits 0 when the parent closes its end.
Result<HelperProcess> StartHelper(const HelperPolicy& policy);

// The unprivileged side. Thread-safe: one request in flight at a time.
class HelperClient {
 public:
  explicit HelperClient(Fd socket) : socket_(std::move(socket)) {}
  // Asks the helper to open `path` read-only (and O_DIRECT when `direct`).
  Result<DeviceFds> OpenDeviceRo(const std::string& path, bool direct) EXCLUDES(mu_);
  // Sends any request and reads the reply (tests and future commands).
  Result<Reply> Call(const Request& request, std::vector<Fd>* fds) EXCLUDES(mu_);
  // Sends raw bytes as one message and reads the reply (tests: malformed input).
  Result<Reply> CallRaw(std::span<const std::byte> message, std::vector<Fd>* fds) EXCLUDES(mu_);
  // True once the helper's end is closed (it exited or was killed); waits
  // at most `timeout` for that.
  bool WaitGone(std::chrono::milliseconds timeout) const;

 private:
  Mutex mu_;
  const Fd socket_;
};

// Drops the calling process to `user` for good: supplementary groups of the
// user (initgroups), setresgid, setresuid, PR_SET_NO_NEW_PRIVS; then checks
// that root cannot be regained and no capability is left (effective,
// permitted). kNotFound when the user does not exist (create it: the package
// does, via sysusers.d), kPermissionDenied when not running as root.
Status DropPrivileges(const std::string& user);

}  // namespace sparetime::privsep

#endif  // SPARETIME_PRIVSEP_HELPER_H_
