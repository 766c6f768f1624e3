// Restore of the threads of a process (see restore_internal.h): each thread
// but the leader is created by a clone3 injected in the leader, with its old
// TID (set_tid) and the flags of a pthread (shared memory, files, fs,
// signal handlers, SysV semaphore undo; in the leader's thread group).
//
// Invariants: the leader is traced with PTRACE_O_TRACECLONE, so a new thread
// is auto-attached and stops (SIGSTOP) before it returns to user space; it
// never executes the instruction after the gadget's syscall. Every thread
// inherits the leader's all-blocked mask at clone time and keeps it until its
// final PTRACE_SETSIGMASK. Threads are created before any credentials drop
// (clone3 set_tid needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN).
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/user.h>

#include <cerrno>
#include <cstring>

#include "restore_internal.h"
#include "util.h"

namespace sparetime::migration {
namespace {

struct CloneArgs {  // struct clone_args (clone3), up to set_tid_size
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size;
};

constexpr uint64_t kThreadFlags =
    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;

}  // namespace

Result<std::vector<Tracee>> CreateThreads(Injector& leader, const ProcessImage& image) {
  Tracee& t = leader.tracee();
  std::vector<Tracee> threads;
  for (const ThreadImage& th : image.threads) {
    const uint64_t want = static_cast<uint64_t>(th.tid);  // pid_t, padded: set_tid is an array of pid_t
    ST_ASSIGN_OR_RETURN(uint64_t tid_addr, leader.PutStruct(want, 256));
    CloneArgs args{};
    args.flags = kThreadFlags;
    args.set_tid = tid_addr;
    args.set_tid_size = 1;
    ST_ASSIGN_OR_RETURN(uint64_t args_addr, leader.PutStruct(args));
    ST_ASSIGN_OR_RETURN(int64_t r, t.RawSyscall(SYS_clone3, {args_addr, sizeof args, 0, 0, 0, 0}));
    if (r == -EEXIST)
      return AlreadyExists("cannot restore thread " + std::to_string(th.tid) + " of process " +
                           std::to_string(image.pid) + ": TID " + std::to_string(th.tid) +
                           " is in use on this host; stop that process or restore on another host");
    if (IsSyscallError(r))
      return ErrnoStatus("injected clone3(CLONE_THREAD, set_tid=" + std::to_string(th.tid) + ")", static_cast<int>(-r));
    if (r != th.tid)
      return Internal("clone3(set_tid=" + std::to_string(th.tid) + ") made thread " + std::to_string(r));
    ST_ASSIGN_OR_RETURN(Tracee thread, Tracee::FromCloneStop(static_cast<pid_t>(r), t.timeout()));
    ST_ASSIGN_OR_RETURN(user_regs_struct regs, thread.GetRegs());
    thread.SetInjectionBase(regs, t.gadget());
    threads.push_back(std::move(thread));
  }
  return threads;
}

}  // namespace sparetime::migration
