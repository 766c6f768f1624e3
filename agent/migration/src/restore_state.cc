// Restore of fds and per-task state into the stub (see restore_internal.h).
//
// fds are rebuilt in three passes so that no temporary number can clobber a
// target number: every open file description is created and parked at a fd
// above all targets, then dup3()ed onto its target numbers (with the fd's own
// close-on-exec bit), then the parked copies are closed. Pipe contents are
// written from the helper through pidfd_getfd on the write end.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "restore_internal.h"
#include "sparetime/base/fd.h"
#include "util.h"

namespace sparetime::migration {
namespace {

constexpr int kOpenFlagsToDrop = O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY | O_CLOEXEC;

class FdBuilder {
 public:
  FdBuilder(Injector& in, const ProcessImage& image) : in_(in), t_(in.tracee()), image_(image) {
    for (const FdEntry& e : image.fds) park_base_ = std::max(park_base_, e.fd + 1);
  }

  Status Build() {
    ST_RETURN_IF_ERROR(t_.Syscall("close_range", SYS_close_range, 0, ~0u, 0).status());
    for (const FdEntry& e : image_.fds) ST_RETURN_IF_ERROR(Create(e));
    for (const FdEntry& e : image_.fds) {
      const int source = e.kind == FdEntry::Kind::kDup ? e.dup_of : e.fd;
      auto parked = parked_.find(source);
      if (parked == parked_.end())
        return Corruption("image: fd " + std::to_string(e.fd) + " duplicates fd " + std::to_string(source) +
                          ", which is not in the image");
      ST_RETURN_IF_ERROR(t_.Syscall("dup3 to fd " + std::to_string(e.fd), SYS_dup3, parked->second,
                                    static_cast<uint64_t>(e.fd), static_cast<uint64_t>(e.flags & O_CLOEXEC))
                             .status());
    }
    for (auto [fd, parked] : parked_) ST_RETURN_IF_ERROR(t_.Syscall("close", SYS_close, parked).status());
    return Status::Ok();
  }

 private:
  // Moves a fresh fd above every target number.
  Result<uint64_t> Park(uint64_t tmp) {
    ST_ASSIGN_OR_RETURN(uint64_t parked, t_.Syscall("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, tmp, F_DUPFD_CLOEXEC,
                                                    static_cast<uint64_t>(park_base_)));
    ST_RETURN_IF_ERROR(t_.Syscall("close", SYS_close, tmp).status());
    return parked;
  }

  Status Create(const FdEntry& e) {
    switch (e.kind) {
      case FdEntry::Kind::kDup:
        return Status::Ok();
      case FdEntry::Kind::kFile:
      case FdEntry::Kind::kDevice:
      case FdEntry::Kind::kDirectory: {
        ST_ASSIGN_OR_RETURN(uint64_t path, in_.PutString(e.path));
        ST_ASSIGN_OR_RETURN(uint64_t tmp, t_.Syscall("openat " + e.path, SYS_openat, static_cast<uint64_t>(AT_FDCWD),
                                                     path, static_cast<uint64_t>((e.flags & ~kOpenFlagsToDrop) | O_CLOEXEC), 0));
        ST_ASSIGN_OR_RETURN(uint64_t parked, Park(tmp));
        if (e.kind != FdEntry::Kind::kDevice && e.offset != 0)
          ST_RETURN_IF_ERROR(t_.Syscall("lseek " + e.path, SYS_lseek, parked, e.offset, SEEK_SET).status());
        parked_[e.fd] = parked;
        return Status::Ok();
      }
      case FdEntry::Kind::kPipeRead:
      case FdEntry::Kind::kPipeWrite:
        return CreatePipeEnd(e);
    }
    return Status::Ok();
  }

  // The first end of a pipe creates the whole pipe (and fills it); each end
  // keeps its own status flags (O_NONBLOCK is per open file description).
  Status CreatePipeEnd(const FdEntry& e) {
    auto [it, created] = pipes_.try_emplace(e.pipe_id);
    if (created) {
      const uint64_t direct = static_cast<uint64_t>(e.flags & O_DIRECT);
      ST_ASSIGN_OR_RETURN(uint64_t fds_addr, in_.Put(std::vector<std::byte>(8)));
      ST_RETURN_IF_ERROR(t_.Syscall("pipe2", SYS_pipe2, fds_addr, O_CLOEXEC | direct).status());
      int fds[2];
      ST_RETURN_IF_ERROR(t_.Read(fds_addr, std::as_writable_bytes(std::span(fds))));
      ST_ASSIGN_OR_RETURN(it->second.first, Park(static_cast<uint64_t>(fds[0])));
      ST_ASSIGN_OR_RETURN(it->second.second, Park(static_cast<uint64_t>(fds[1])));
      ST_RETURN_IF_ERROR(Fill(e.pipe_id, it->second.second));
    }
    uint64_t parked = e.kind == FdEntry::Kind::kPipeRead ? it->second.first : it->second.second;
    if (e.flags & O_NONBLOCK)
      ST_RETURN_IF_ERROR(t_.Syscall("fcntl(F_SETFL)", SYS_fcntl, parked, F_SETFL, O_NONBLOCK).status());
    parked_[e.fd] = parked;
    return Status::Ok();
  }

  Status Fill(uint64_t pipe_id, uint64_t write_end) {
    auto p = std::find_if(image_.pipes.begin(), image_.pipes.end(),
                          [&](const PipeContents& c) { return c.pipe_id == pipe_id; });
    if (p == image_.pipes.end()) return Status::Ok();
    ST_ASSIGN_OR_RETURN(Fd end, DuplicateFdOf(t_.pid(), write_end));
    if (p->capacity && ::fcntl(end.get(), F_SETPIPE_SZ, static_cast<int>(p->capacity)) < 0)
      return ErrnoStatus("F_SETPIPE_SZ " + std::to_string(p->capacity) + " on a restored pipe", errno);
    if (p->data.size() > p->capacity)
      return Corruption("image: pipe " + std::to_string(pipe_id) + " holds more data than its capacity");
    return WriteFull(end.get(), p->data);
  }

  Injector& in_;
  Tracee& t_;
  const ProcessImage& image_;
  int park_base_ = 0;
  std::map<int, uint64_t> parked_;  // image fd -> parked stub fd
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> pipes_;  // pipe id -> parked (read, write)
};

Status RestoreSignals(Injector& in, const ProcessImage& image) {
  Tracee& t = in.tracee();
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    uint64_t act[4] = {0, 0, 0, 0};  // default unless the image says otherwise
    for (const SignalAction& a : image.actions)
      if (a.signo == sig) act[0] = a.handler, act[1] = a.flags, act[2] = a.restorer, act[3] = a.mask;
    ST_ASSIGN_OR_RETURN(uint64_t addr, in.PutStruct(act));
    ST_RETURN_IF_ERROR(
        t.Syscall("rt_sigaction " + std::to_string(sig), SYS_rt_sigaction, static_cast<uint64_t>(sig), addr, 0, 8)
            .status());
  }
  return Status::Ok();
}

Status RestoreTimersAndPending(Injector& in, const ProcessImage& image) {
  Tracee& t = in.tracee();
  for (int which = 0; which < 3; ++which) {
    ItimerValue v = image.itimers[static_cast<size_t>(which)];
    if (v.value_sec == 0 && v.value_usec == 0) {
      // A periodic ITIMER_REAL whose SIGALRM is still pending reads as
      // stopped: the kernel re-arms it only when that signal is dequeued.
      // Arm it one interval from now instead.
      if (v.interval_sec == 0 && v.interval_usec == 0) continue;
      v.value_sec = v.interval_sec;
      v.value_usec = v.interval_usec;
    }
    ST_ASSIGN_OR_RETURN(uint64_t addr, in.PutStruct(v));
    ST_RETURN_IF_ERROR(t.Syscall("setitimer", SYS_setitimer, static_cast<uint64_t>(which), addr, 0).status());
  }
  const uint64_t pid = static_cast<uint64_t>(t.pid());
  for (const PendingSignal& p : image.pending) {
    int32_t signo = 0;
    std::memcpy(&signo, p.info.data(), sizeof signo);
    ST_ASSIGN_OR_RETURN(uint64_t addr, in.Put(p.info));
    if (p.shared)
      ST_RETURN_IF_ERROR(t.Syscall("rt_sigqueueinfo", SYS_rt_sigqueueinfo, pid, static_cast<uint64_t>(signo), addr).status());
    else
      ST_RETURN_IF_ERROR(
          t.Syscall("rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, pid, pid, static_cast<uint64_t>(signo), addr).status());
  }
  return Status::Ok();
}

}  // namespace

// Last: after these the stub may lack the privileges the steps above need.
// Credentials are per thread: called in each thread.
Status RestoreCredentials(Injector& in, const ProcessImage& image) {
  Tracee& t = in.tracee();
  const Credentials& c = image.creds;
  for (uint64_t cap = 0; cap <= CAP_LAST_CAP; ++cap)
    if (!(c.cap_bounding & (1ull << cap)))
      ST_RETURN_IF_ERROR(t.Syscall("prctl(PR_CAPBSET_DROP)", SYS_prctl, PR_CAPBSET_DROP, cap).status());
  const bool keep_caps = c.cap_permitted != 0 && c.uids[1] != 0;
  if (keep_caps) ST_RETURN_IF_ERROR(t.Syscall("prctl(PR_SET_KEEPCAPS)", SYS_prctl, PR_SET_KEEPCAPS, 1).status());
  std::vector<uint32_t> groups = c.groups;
  groups.resize(std::max<size_t>(groups.size(), 1));
  if (groups.size() * 4 > kPageSize) return FailedPrecondition("restore: too many supplementary groups");
  ST_ASSIGN_OR_RETURN(uint64_t groups_addr, in.Put(std::as_bytes(std::span(groups))));
  ST_RETURN_IF_ERROR(t.Syscall("setgroups", SYS_setgroups, c.groups.size(), groups_addr).status());
  ST_RETURN_IF_ERROR(t.Syscall("setresgid", SYS_setresgid, c.gids[0], c.gids[1], c.gids[2]).status());
  ST_RETURN_IF_ERROR(t.Syscall("setfsgid", SYS_setfsgid, c.gids[3]).status());
  ST_RETURN_IF_ERROR(t.Syscall("setresuid", SYS_setresuid, c.uids[0], c.uids[1], c.uids[2]).status());
  ST_RETURN_IF_ERROR(t.Syscall("setfsuid", SYS_setfsuid, c.uids[3]).status());
  struct {
    uint32_t version;
    int32_t pid;
    uint32_t data[6];  // {effective, permitted, inheritable} x {low, high}
  } caps{_LINUX_CAPABILITY_VERSION_3, 0,
         {static_cast<uint32_t>(c.cap_effective), static_cast<uint32_t>(c.cap_permitted),
          static_cast<uint32_t>(c.cap_inheritable), static_cast<uint32_t>(c.cap_effective >> 32),
          static_cast<uint32_t>(c.cap_permitted >> 32), static_cast<uint32_t>(c.cap_inheritable >> 32)}};
  ST_ASSIGN_OR_RETURN(uint64_t caps_addr, in.PutStruct(caps));
  ST_RETURN_IF_ERROR(t.Syscall("capset", SYS_capset, caps_addr, caps_addr + 8).status());
  if (keep_caps) ST_RETURN_IF_ERROR(t.Syscall("prctl(PR_SET_KEEPCAPS)", SYS_prctl, PR_SET_KEEPCAPS, 0).status());
  return Status::Ok();
}

Status RestoreThreadState(Injector& in, const ThreadImage& th, bool set_name) {
  Tracee& t = in.tracee();
  if (set_name) {
    ST_ASSIGN_OR_RETURN(uint64_t comm, in.PutString(th.comm.substr(0, 15)));
    ST_RETURN_IF_ERROR(t.Syscall("prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, comm).status());
  }
  if (!(th.altstack_flags & SS_DISABLE)) {
    struct {
      uint64_t sp;
      int32_t flags, pad;
      uint64_t size;
    } ss{th.altstack_sp, th.altstack_flags & ~SS_ONSTACK, 0, th.altstack_size};
    ST_ASSIGN_OR_RETURN(uint64_t addr, in.PutStruct(ss));
    ST_RETURN_IF_ERROR(t.Syscall("sigaltstack", SYS_sigaltstack, addr, 0).status());
  }
  ST_RETURN_IF_ERROR(t.Syscall("set_tid_address", SYS_set_tid_address, th.tid_address).status());
  if (th.robust_list)
    ST_RETURN_IF_ERROR(t.Syscall("set_robust_list", SYS_set_robust_list, th.robust_list, th.robust_list_len).status());
  if (th.rseq_addr)
    ST_RETURN_IF_ERROR(t.Syscall("rseq", SYS_rseq, th.rseq_addr, th.rseq_len, 0, th.rseq_sig).status());
  return Status::Ok();
}

Status QueueThreadSignals(Injector& leader, pid_t tgid, const ThreadImage& th) {
  Tracee& t = leader.tracee();
  for (const PendingSignal& p : th.pending) {
    int32_t signo = 0;
    std::memcpy(&signo, p.info.data(), sizeof signo);
    ST_ASSIGN_OR_RETURN(uint64_t addr, leader.Put(p.info));
    ST_RETURN_IF_ERROR(t.Syscall("rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, static_cast<uint64_t>(tgid),
                                 static_cast<uint64_t>(th.tid), static_cast<uint64_t>(signo), addr)
                           .status());
  }
  return Status::Ok();
}

Status RestoreFiles(Injector& in, const ProcessImage& image) { return FdBuilder(in, image).Build(); }

Status RestoreTaskState(Injector& in, const ProcessImage& image) {
  Tracee& t = in.tracee();
  ST_ASSIGN_OR_RETURN(uint64_t cwd, in.PutString(image.cwd));
  ST_RETURN_IF_ERROR(t.Syscall("chdir " + image.cwd, SYS_chdir, cwd).status());
  ST_RETURN_IF_ERROR(t.Syscall("umask", SYS_umask, image.umask).status());
  ST_RETURN_IF_ERROR(t.Syscall("personality", SYS_personality, image.personality).status());
  ST_ASSIGN_OR_RETURN(uint64_t comm, in.PutString(image.comm.substr(0, 15)));
  ST_RETURN_IF_ERROR(t.Syscall("prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, comm).status());
  ST_RETURN_IF_ERROR(RestoreSignals(in, image));
  ST_RETURN_IF_ERROR(RestoreTimersAndPending(in, image));
  for (int r = 0; r < 16; ++r) {
    rlimit lim{image.rlimits[static_cast<size_t>(r)][0], image.rlimits[static_cast<size_t>(r)][1]};
    if (::prlimit(t.pid(), static_cast<__rlimit_resource>(r), &lim, nullptr) != 0)
      return ErrnoStatus("prlimit " + std::to_string(r) + " on the restored process", errno);
  }
  return Status::Ok();
}

}  // namespace sparetime::migration
