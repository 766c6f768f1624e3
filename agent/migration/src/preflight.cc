// Preflight: read-only checks that refuse, before anything is stopped, what
// cannot be moved (see docs/migration.md "What is refused"). Also re-run
// on the frozen process, so a thread or fd created in between is caught.
#include <sys/stat.h>
#include <unistd.h>

#include <iterator>
#include <map>
#include <sstream>

#include "classify.h"
#include "proc_files.h"
#include "sparetime/base/fd.h"
#include "sparetime/migration/checkpoint.h"
#include "util.h"

namespace sparetime::migration {
namespace {

constexpr size_t kMaxThreads = 1024;

Status Refuse(const std::string& command, pid_t pid, const std::string& comm, const std::string& why) {
  return FailedPrecondition("cannot " + command + " process " + std::to_string(pid) + " (" + comm + "): " + why);
}

Status CheckNamespacesAndRoot(const std::string& dir, const std::string& proc_root) {
  for (const char* ns : {"mnt", "pid", "user", "ipc", "uts", "net"}) {
    ST_ASSIGN_OR_RETURN(std::string theirs, ReadLink(dir + "/ns/" + ns));
    ST_ASSIGN_OR_RETURN(std::string ours, ReadLink(proc_root + "/self/ns/" + ns));
    if (theirs != ours)
      return FailedPrecondition(
          std::string("it lives in another ") + ns + " namespace (" + theirs + " vs ours " + ours +
          "); run sparetime inside its namespaces, e.g. `nsenter -t PID -m -n -p sparetime ...` with the "
          "process's PID (`ip netns exec` makes a new mount namespace each time it is run, so a process "
          "started under it is never in the mount namespace of a later `ip netns exec`)");
  }
  ST_ASSIGN_OR_RETURN(std::string root, ReadLink(dir + "/root"));
  if (root != "/") return FailedPrecondition("its root directory is " + root + " (chroot), not /");
  return Status::Ok();
}

Status CheckFds(const std::string& dir) {
  ST_ASSIGN_OR_RETURN(std::vector<int> fds, ListFds(dir));
  std::map<std::string, std::pair<int, int>> pipe_ends;  // link -> (a read fd, a write fd)
  for (int fd : fds) {
    ST_ASSIGN_OR_RETURN(std::string link, ReadLink(dir + "/fd/" + std::to_string(fd)));
    ST_ASSIGN_OR_RETURN(FdEntry::Kind kind, ClassifyFd(dir, fd, link));
    if (kind == FdEntry::Kind::kPipeRead) pipe_ends.try_emplace(link, -1, -1).first->second.first = fd;
    if (kind == FdEntry::Kind::kPipeWrite) pipe_ends.try_emplace(link, -1, -1).first->second.second = fd;
  }
  for (const auto& [link, ends] : pipe_ends) {
    if (ends.first >= 0 && ends.second >= 0) continue;
    int fd = ends.first >= 0 ? ends.first : ends.second;
    return FailedPrecondition("fd " + std::to_string(fd) + " (" + link +
                              ") is one end of a pipe whose other end is not in the process (a shell pipeline?); "
                              "stage 1 moves only pipes with both ends inside the process");
  }
  return Status::Ok();
}

Status CheckMappings(const std::string& dir) {
  ST_ASSIGN_OR_RETURN(std::vector<Vma> vmas, ReadSmaps(dir));
  for (const Vma& v : vmas) ST_RETURN_IF_ERROR(ClassifyVma(v).status());
  return Status::Ok();
}

Status CheckLocks(pid_t pid, const std::string& proc_root) {
  auto locks = ReadFileToString(proc_root + "/locks");
  if (!locks.ok()) return Status::Ok();  // no /proc/locks: nothing to check
  // "1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 0 EOF" (waiters: "1: -> POSIX ...").
  std::istringstream lines(*locks);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
    size_t pid_index = (f.size() > 1 && f[1] == "->") ? 5 : 4;
    if (f.size() > pid_index && f[pid_index] == std::to_string(pid))
      return FailedPrecondition("it holds a file lock (/proc/locks: " + line + "); locks cannot be moved");
  }
  return Status::Ok();
}

// Per-thread state the restore cannot give back: seccomp, shadow stacks and
// ambient capabilities of any thread, credentials that differ between
// threads (the restore gives every thread the leader's), child processes.
Status CheckThreads(const std::string& dir, std::map<std::string, std::string>& leader, bool frozen_by_caller) {
  ST_ASSIGN_OR_RETURN(std::vector<pid_t> tids, ListTasks(dir));
  if (tids.size() > kMaxThreads)
    return FailedPrecondition("it has " + std::to_string(tids.size()) + " threads; at most " +
                              std::to_string(kMaxThreads) + " are moved");
  for (pid_t tid : tids) {
    const std::string task = dir + "/task/" + std::to_string(tid);
    auto children = ReadFileToString(task + "/children");
    if (children.ok() && !children->empty())
      return FailedPrecondition("it has child processes (" + *children +
                                "); process trees are not moved yet (zombies count: reap them first)");
    auto st = ReadStatus(task);
    if (!st.ok()) continue;  // the thread ended meanwhile
    auto& s = *st;
    const std::string name = "thread " + std::to_string(tid) + " (" + s["Name"] + ")";
    if (frozen_by_caller && (s["State"].empty() || s["State"][0] != 't'))
      return FailedPrecondition(name + " is in state " + s["State"] + " instead of our ptrace stop");
    if (s["Seccomp"] != "0")
      return FailedPrecondition(name + " runs under seccomp (mode " + s["Seccomp"] + "); filters cannot be moved");
    if (auto f = s.find("x86_Thread_features"); f != s.end() && !f->second.empty())
      return FailedPrecondition(name + " uses x86 shadow stacks (" + f->second + "), which cannot be moved");
    if (s["CapAmb"] != "" && s["CapAmb"] != "0000000000000000")
      return FailedPrecondition(name + " has ambient capabilities, which cannot be restored");
    for (const char* key : {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "NoNewPrivs"})
      if (s[key] != leader[key])
        return FailedPrecondition(name + " has other credentials than the leader (" + key + ": " + s[key] +
                                  " vs " + leader[key] + "); threads with their own credentials cannot be restored");
  }
  return Status::Ok();
}

Status CheckProcessImpl(pid_t pid, const std::string& proc_root, bool frozen_by_caller) {
  const std::string dir = ProcDir(pid, proc_root);
  ST_ASSIGN_OR_RETURN(auto status, ReadStatus(dir));
  if (pid == ::getpid()) return FailedPrecondition("it is the calling process itself");
  const std::string& state = status["State"];
  if (state.empty() || state[0] == 'Z' || state[0] == 'X') return FailedPrecondition("it is a zombie or exiting");
  if (!frozen_by_caller && (state[0] == 'T' || state[0] == 't'))
    return FailedPrecondition("it is stopped (" + state + "); continue it (kill -CONT) first");
  if (frozen_by_caller && state[0] != 't')
    return FailedPrecondition("it is in state " + state + " instead of our ptrace stop");
  const std::string tracer = status["TracerPid"];
  const bool traced_by_us = tracer == std::to_string(::gettid()) || tracer == std::to_string(::getpid());
  if (frozen_by_caller ? !traced_by_us : tracer != "0")
    return FailedPrecondition("it is already traced by process " + tracer + " (a debugger or strace?); detach it first");
  if (status["Seccomp"] != "0")
    return FailedPrecondition("it runs under seccomp (mode " + status["Seccomp"] +
                              "); filters cannot be moved in stage 1");
  if (auto f = status.find("x86_Thread_features"); f != status.end() && !f->second.empty())
    return FailedPrecondition("it uses x86 shadow stacks (" + f->second + "), which stage 1 cannot move");
  if (status["CapAmb"] != "" && status["CapAmb"] != "0000000000000000")
    return FailedPrecondition("it has ambient capabilities, which stage 1 cannot restore");
  ST_RETURN_IF_ERROR(CheckThreads(dir, status, frozen_by_caller));
  auto timers = ReadFileToString(dir + "/timers");
  if (timers.ok() && !timers->empty())
    return FailedPrecondition("it has POSIX timers (timer_create), which stage 1 cannot move (itimers are fine)");
  ST_RETURN_IF_ERROR(CheckNamespacesAndRoot(dir, proc_root));
  ST_RETURN_IF_ERROR(CheckFds(dir));
  ST_RETURN_IF_ERROR(CheckMappings(dir));
  return CheckLocks(pid, proc_root);
}

}  // namespace

Status CheckProcess(pid_t pid, const std::string& proc_root, bool frozen_by_caller,
                    const std::string& command) {
  Status s = CheckProcessImpl(pid, proc_root, frozen_by_caller);
  if (s.ok() || s.code() != ErrorCode::kFailedPrecondition) {
    if (s.code() == ErrorCode::kNotFound && !s.message().empty())
      return NotFound("cannot " + command + " process " + std::to_string(pid) + ": " + s.message());
    return s;
  }
  auto comm = ReadFileToString(ProcDir(pid, proc_root) + "/comm");
  std::string name = comm.ok() ? std::string(comm->substr(0, comm->find('\n'))) : "?";
  return Refuse(command, pid, name, s.message());
}

Status Preflight(pid_t pid, const PreflightOptions& options) {
  return CheckProcess(pid, options.proc_root, false, options.command);
}

}  // namespace sparetime::migration
