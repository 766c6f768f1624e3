// Tracee implementation: ptrace requests, bounded waits and syscall
// injection (see tracee.h).
#include "tracee.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "util.h"

namespace sparetime::migration {
namespace {

constexpr int kSyscallStop = SIGTRAP | 0x80;  // with PTRACE_O_TRACESYSGOOD
constexpr size_t kMaxXstate = 64 * 1024;

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by ") + strsignal(WTERMSIG(status));
  if (WIFSTOPPED(status)) {
    int sig = WSTOPSIG(status);
    if (sig == kSyscallStop) return "stopped at a syscall";
    std::string s = std::string("stopped by ") + strsignal(sig & 0x7f);
    if (status >> 16) s += " (ptrace event " + std::to_string(status >> 16) + ")";
    return s;
  }
  return "changed state (wait status " + std::to_string(status) + ")";
}

Result<Fd> OpenMem(pid_t pid) { return OpenFile("/proc/" + std::to_string(pid) + "/mem", O_RDWR); }

}  // namespace

bool IsSyscallError(int64_t ret) { return ret < 0 && ret > -4096; }

Result<Fd> DuplicateFdOf(pid_t pid, uint64_t fd) {
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) return ErrnoStatus("pidfd_open " + std::to_string(pid), errno);
  Fd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!dup.valid())
    return ErrnoStatus("pidfd_getfd fd " + std::to_string(fd) + " of process " + std::to_string(pid), errno);
  return dup;
}

uint64_t XstateXcr0(std::span<const std::byte> xstate) {
  constexpr size_t kXcr0Offset = 464;  // sw_reserved.xcr0 in the standard layout
  uint64_t xcr0 = 0;
  if (xstate.size() >= kXcr0Offset + 8) std::memcpy(&xcr0, xstate.data() + kXcr0Offset, 8);
  return xcr0;
}

Status Tracee::Ptrace(std::string_view what, int request, uint64_t addr, uint64_t data) {
  if (::ptrace(static_cast<__ptrace_request>(request), pid_, addr, data) == -1)
    return ErrnoStatus(std::string(what) + " on process " + std::to_string(pid_), errno);
  return Status::Ok();
}

Result<int> Tracee::Wait(std::string_view waiting_for) {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, __WALL | WNOHANG);
    if (r == pid_) return status;
    if (r < 0 && errno != EINTR) return ErrnoStatus("waitpid " + std::to_string(pid_), errno);
    if (std::chrono::steady_clock::now() >= deadline)
      return Unavailable("process " + std::to_string(pid_) + " did not reach " + std::string(waiting_for) +
                         " within " + std::to_string(timeout_.count()) + " ms");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
}

Result<Tracee> Tracee::Seize(pid_t pid, std::chrono::milliseconds timeout) {
  if (::ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD) == -1)
    return ErrnoStatus("PTRACE_SEIZE process " + std::to_string(pid), errno);
  Tracee t(pid, Fd(), timeout);
  auto fail = [&](Status s) {
    ::ptrace(PTRACE_DETACH, pid, 0, 0);  // best effort: it was never stopped by us
    return s;
  };
  if (Status s = t.Ptrace("PTRACE_INTERRUPT", PTRACE_INTERRUPT, 0, 0); !s.ok()) return fail(s);
  for (;;) {
    auto status = t.Wait("the checkpoint stop");
    if (!status.ok()) return fail(status.error());
    int st = *status;
    if (!WIFSTOPPED(st))
      return Unavailable("process " + std::to_string(pid) + " " + DescribeWaitStatus(st) + " while being frozen");
    if (st >> 16 == PTRACE_EVENT_STOP) break;
    // A signal-delivery stop came first: deliver the signal as the kernel
    // would have; the interrupt stays pending and follows.
    int sig = WSTOPSIG(st);
    if (Status s = t.Ptrace("PTRACE_CONT", PTRACE_CONT, 0, static_cast<uint64_t>(sig)); !s.ok()) return fail(s);
  }
  auto mem = OpenMem(pid);
  if (!mem.ok()) return fail(mem.error());
  t.mem_ = std::move(*mem);
  return t;
}

Result<Tracee> Tracee::FromExecStop(pid_t pid, std::chrono::milliseconds timeout) {
  Tracee t(pid, Fd(), timeout);
  ST_ASSIGN_OR_RETURN(int st, t.Wait("the restore stub's exec stop"));
  if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP)
    return Internal("restore stub " + std::to_string(pid) + " " + DescribeWaitStatus(st) +
                    " instead of stopping after exec (is the stub path an executable?)");
  ST_RETURN_IF_ERROR(t.Ptrace("PTRACE_SETOPTIONS", PTRACE_SETOPTIONS, 0,
                              PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE));
  ST_ASSIGN_OR_RETURN(t.mem_, OpenMem(pid));
  return t;
}

Result<Tracee> Tracee::FromCloneStop(pid_t tid, std::chrono::milliseconds timeout) {
  Tracee t(tid, Fd(), timeout);
  ST_ASSIGN_OR_RETURN(int st, t.Wait("its first stop as a new thread"));
  if (!WIFSTOPPED(st))
    return Internal("restored thread " + std::to_string(tid) + " " + DescribeWaitStatus(st) + " right after clone3");
  ST_ASSIGN_OR_RETURN(t.mem_, OpenMem(tid));
  return t;
}

Result<user_regs_struct> Tracee::GetRegs() {
  user_regs_struct regs{};
  ST_RETURN_IF_ERROR(Ptrace("PTRACE_GETREGS", PTRACE_GETREGS, 0, reinterpret_cast<uint64_t>(&regs)));
  return regs;
}

Status Tracee::SetRegs(const user_regs_struct& regs) {
  return Ptrace("PTRACE_SETREGS", PTRACE_SETREGS, 0, reinterpret_cast<uint64_t>(&regs));
}

Result<std::vector<std::byte>> Tracee::GetXstate() {
  std::vector<std::byte> buf(kMaxXstate);
  iovec iov{buf.data(), buf.size()};
  ST_RETURN_IF_ERROR(Ptrace("PTRACE_GETREGSET(NT_X86_XSTATE)", PTRACE_GETREGSET, NT_X86_XSTATE,
                            reinterpret_cast<uint64_t>(&iov)));
  buf.resize(iov.iov_len);
  return buf;
}

Status Tracee::SetXstate(std::span<const std::byte> xstate) {
  std::vector<std::byte> copy(xstate.begin(), xstate.end());
  iovec iov{copy.data(), copy.size()};
  return Ptrace("PTRACE_SETREGSET(NT_X86_XSTATE)", PTRACE_SETREGSET, NT_X86_XSTATE,
                reinterpret_cast<uint64_t>(&iov));
}

Result<uint64_t> Tracee::GetSigmask() {
  uint64_t mask = 0;
  ST_RETURN_IF_ERROR(Ptrace("PTRACE_GETSIGMASK", PTRACE_GETSIGMASK, sizeof mask, reinterpret_cast<uint64_t>(&mask)));
  return mask;
}

Status Tracee::SetSigmask(uint64_t mask) {
  return Ptrace("PTRACE_SETSIGMASK", PTRACE_SETSIGMASK, sizeof mask, reinterpret_cast<uint64_t>(&mask));
}

Status Tracee::Read(uint64_t addr, std::span<std::byte> out) {
  auto n = ReadFullAt(mem_.get(), out, addr);
  if (!n.ok()) return n.error().WithContext("read memory of process " + std::to_string(pid_));
  if (*n != out.size())
    return IoError("read memory of process " + std::to_string(pid_) + " at " + HexAddr(addr) + ": short read");
  return Status::Ok();
}

Status Tracee::Write(uint64_t addr, std::span<const std::byte> data) {
  Status s = WriteFullAt(mem_.get(), data, addr);
  if (!s.ok()) return s.WithContext("write memory of process " + std::to_string(pid_) + " at " + HexAddr(addr));
  return Status::Ok();
}

void Tracee::SetInjectionBase(const user_regs_struct& regs, uint64_t gadget) {
  base_ = regs;
  gadget_ = gadget;
}

Result<int64_t> Tracee::RawSyscall(long nr, std::array<uint64_t, 6> args) {
  user_regs_struct regs = base_;
  regs.rip = gadget_;
  regs.rax = static_cast<uint64_t>(nr);
  regs.orig_rax = static_cast<uint64_t>(-1);
  regs.rdi = args[0];
  regs.rsi = args[1];
  regs.rdx = args[2];
  regs.r10 = args[3];
  regs.r8 = args[4];
  regs.r9 = args[5];
  ST_RETURN_IF_ERROR(SetRegs(regs));
  for (const char* phase : {"syscall entry", "syscall exit"}) {
    int st = 0;
    do {  // past event stops (PTRACE_EVENT_CLONE) to the syscall stop
      ST_RETURN_IF_ERROR(Ptrace("PTRACE_SYSCALL", PTRACE_SYSCALL, 0, 0));
      ST_ASSIGN_OR_RETURN(st, Wait(std::string("injected syscall ") + std::to_string(nr) + " " + phase));
    } while (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP && (st >> 16) != 0);
    if (!WIFSTOPPED(st) || WSTOPSIG(st) != kSyscallStop)
      return Internal("process " + std::to_string(pid_) + " " + DescribeWaitStatus(st) + " during injected syscall " +
                      std::to_string(nr) + " (" + phase + ")");
  }
  ST_ASSIGN_OR_RETURN(user_regs_struct out, GetRegs());
  return static_cast<int64_t>(out.rax);
}

Result<uint64_t> Tracee::Syscall(std::string_view what, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                 uint64_t a5, uint64_t a6) {
  ST_ASSIGN_OR_RETURN(int64_t r, RawSyscall(nr, {a1, a2, a3, a4, a5, a6}));
  if (IsSyscallError(r))
    return ErrnoStatus("injected " + std::string(what) + " in process " + std::to_string(pid_), static_cast<int>(-r));
  return static_cast<uint64_t>(r);
}

Status Tracee::Detach() { return Ptrace("PTRACE_DETACH", PTRACE_DETACH, 0, 0); }

Status Tracee::Kill() {
  if (::kill(pid_, SIGKILL) != 0 && errno != ESRCH) return ErrnoStatus("kill process " + std::to_string(pid_), errno);
  for (;;) {
    ST_ASSIGN_OR_RETURN(int st, Wait("its exit after SIGKILL"));
    if (WIFEXITED(st) || WIFSIGNALED(st)) return Status::Ok();
  }
}

}  // namespace sparetime::migration
