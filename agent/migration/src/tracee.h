// Tracee: one ptrace-stopped thread, driven from the calling thread.
//
// Provides bounded waits (waitpid polled against a deadline), register and
// xstate access, memory access through /proc/PID/mem (FOLL_FORCE: works on
// read-only and PROT_NONE pages), and syscall injection: registers are set to
// {rip = gadget (a `syscall` instruction), rax = nr, args}, the thread runs to
// the syscall-exit stop (PTRACE_SYSCALL twice), and rax is the result. The
// instruction after the gadget never executes. Injected registers carry
// orig_rax = -1 so the kernel applies no syscall-restart logic to them.
//
// Invariants: every ptrace request comes from the thread that attached;
// between calls the thread is in a ptrace stop. The caller owns the
// registers: Syscall() leaves whatever the syscall produced, so callers set
// the final registers themselves before Detach().
#ifndef SPARETIME_MIGRATION_TRACEE_H_
#define SPARETIME_MIGRATION_TRACEE_H_

#include <sys/types.h>
#include <sys/user.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"

namespace sparetime::migration {

class Tracee {
 public:
  // PTRACE_SEIZE (TRACESYSGOOD) + PTRACE_INTERRUPT and waits for the stop.
  // Signals that arrive first are delivered normally (the process runs its
  // handlers) before the interrupt stop.
  static Result<Tracee> Seize(pid_t pid, std::chrono::milliseconds timeout);
  // A child that called PTRACE_TRACEME and execve(): waits for the exec
  // SIGTRAP and sets TRACESYSGOOD | EXITKILL.
  static Result<Tracee> FromExecStop(pid_t pid, std::chrono::milliseconds timeout);
  // A thread auto-attached by PTRACE_O_TRACECLONE (FromExecStop sets it):
  // waits for its first stop (SIGSTOP, suppressed by the next resume).
  static Result<Tracee> FromCloneStop(pid_t tid, std::chrono::milliseconds timeout);

  Tracee(Tracee&&) = default;
  Tracee& operator=(Tracee&&) = default;

  pid_t pid() const { return pid_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  Result<user_regs_struct> GetRegs();
  Status SetRegs(const user_regs_struct& regs);
  Result<std::vector<std::byte>> GetXstate();
  Status SetXstate(std::span<const std::byte> xstate);
  Result<uint64_t> GetSigmask();
  Status SetSigmask(uint64_t mask);

  Status Read(uint64_t addr, std::span<std::byte> out);
  Status Write(uint64_t addr, std::span<const std::byte> data);

  // Registers used as the base of every injected syscall.
  void SetInjectionBase(const user_regs_struct& regs, uint64_t gadget);
  uint64_t gadget() const { return gadget_; }
  // Runs syscall `nr`; returns rax as is (-4095..-1 is -errno). Event stops
  // between entry and exit (PTRACE_EVENT_CLONE of an injected clone3) are
  // passed over.
  Result<int64_t> RawSyscall(long nr, std::array<uint64_t, 6> args);
  // RawSyscall, with -errno turned into an error naming `what`.
  Result<uint64_t> Syscall(std::string_view what, long nr, uint64_t a1 = 0, uint64_t a2 = 0,
                           uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);

  Status Detach();
  // SIGKILL, then waits (bounded) for the exit; reaps it when we are the parent.
  Status Kill();

 private:
  Tracee(pid_t pid, Fd mem, std::chrono::milliseconds timeout)
      : pid_(pid), mem_(std::move(mem)), timeout_(timeout) {}
  // Waits for the next stop or exit; returns the wait status.
  Result<int> Wait(std::string_view waiting_for);
  Status Ptrace(std::string_view what, int request, uint64_t addr, uint64_t data);

  pid_t pid_;
  Fd mem_;
  std::chrono::milliseconds timeout_;
  user_regs_struct base_{};
  uint64_t gadget_ = 0;
};

// True for the -errno range of an injected syscall's raw result.
bool IsSyscallError(int64_t ret);

// A duplicate of fd `fd` of process `pid` (pidfd_open + pidfd_getfd), for
// inspecting or filling the same open file description from the helper.
Result<Fd> DuplicateFdOf(pid_t pid, uint64_t fd);

// XCR0 as saved in an NT_X86_XSTATE regset (sw_reserved.xcr0), 0 if absent.
uint64_t XstateXcr0(std::span<const std::byte> xstate);

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_TRACEE_H_
