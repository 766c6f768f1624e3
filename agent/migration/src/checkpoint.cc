// FrozenProcess and Checkpoint (see checkpoint.h): freezing every thread, the
// injected state queries (signal handlers, brk, itimers through the leader;
// altstack and tid address in each thread), the syscall-restart rewrite, rseq,
// pending signals, and putting the source back exactly as it was.
//
// Invariants: every thread of the group is in our ptrace stop from Freeze()
// until Resume()/Kill() (listing /proc/PID/task until nothing new appears);
// tasks_[0] is the leader, the others are sorted by TID; each thread's
// registers and mask are put back on Resume().
#include "sparetime/migration/checkpoint.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "classify.h"
#include "dump.h"
#include "proc_files.h"
#include "tracee.h"
#include "util.h"

namespace sparetime::migration {
namespace {

// Dump() without a sink: the page store is kept in the image.
class MemoryPageSink final : public PageSink {
 public:
  explicit MemoryPageSink(std::vector<std::byte>& pages) : pages_(pages) {}
  Status Append(uint64_t, uint64_t, std::span<const std::byte> data) override {
    pages_.insert(pages_.end(), data.begin(), data.end());
    return Status::Ok();
  }

 private:
  std::vector<std::byte>& pages_;
};

constexpr int64_t kERestartSys = -512, kERestartNoIntr = -513, kERestartNoHand = -514,
                  kERestartRestartBlock = -516;
constexpr long kPtraceGetRseqConfiguration = 0x420f;

struct RseqConfiguration {  // struct ptrace_rseq_configuration
  uint64_t rseq_abi_pointer;
  uint32_t rseq_abi_size, signature, flags, pad;
};
struct PeekSiginfoArgs {  // struct ptrace_peeksiginfo_args
  uint64_t off;
  uint32_t flags;
  int32_t nr;
};

// Registers to continue with after an interrupted syscall. `same_task`: the
// source itself resumes and its kernel restart block is intact, so
// ERESTART_RESTARTBLOCK becomes restart_syscall; a restored task has no
// restart block, so that call returns EINTR instead (as CRIU does).
user_regs_struct RestartFixup(user_regs_struct regs, bool same_task) {
  const auto orig = static_cast<int64_t>(regs.orig_rax);
  const auto rax = static_cast<int64_t>(regs.rax);
  if (orig >= 0) {
    if (rax == kERestartSys || rax == kERestartNoIntr || rax == kERestartNoHand) {
      regs.rax = regs.orig_rax;
      regs.rip -= 2;
    } else if (rax == kERestartRestartBlock) {
      if (same_task) {
        regs.rax = SYS_restart_syscall;
        regs.rip -= 2;
      } else {
        regs.rax = static_cast<uint64_t>(-EINTR);
      }
    }
  }
  regs.orig_rax = static_cast<uint64_t>(-1);
  return regs;
}

std::span<const std::byte> RawBytes(const void* p, size_t n) { return {static_cast<const std::byte*>(p), n}; }

// One stopped task of the thread group and what it looked like before we
// touched it.
struct Task {
  Tracee tracee;
  user_regs_struct regs{};
  uint64_t sigmask = 0;
  bool captured = false;  // regs and sigmask hold the source's values
};

}  // namespace

class FrozenProcess::Impl {
 public:
  // tasks[0] is the leader.
  Impl(std::vector<Task> tasks, CheckpointOptions options) : tasks_(std::move(tasks)), options_(std::move(options)) {}
  ~Impl() {
    if (attached_) Resume().IgnoreError();
  }

  Status Init() {
    for (Task& t : tasks_) {
      ST_ASSIGN_OR_RETURN(t.regs, t.tracee.GetRegs());
      ST_ASSIGN_OR_RETURN(t.sigmask, t.tracee.GetSigmask());
      t.captured = true;
      // Keep every signal pending while we inject; they are delivered after
      // the source resumes, or saved as pending for the restore.
      ST_RETURN_IF_ERROR(t.tracee.SetSigmask(~0ull));
    }
    ST_ASSIGN_OR_RETURN(std::vector<Vma> vmas, ReadSmaps(dir()));
    for (const Vma& v : vmas) {
      if (v.path != "[vdso]") continue;
      std::vector<std::byte> code(v.end - v.start);
      ST_RETURN_IF_ERROR(leader().Read(v.start, code));
      for (size_t i = 0; i + 1 < code.size(); ++i) {
        if (code[i] == std::byte{0x0f} && code[i + 1] == std::byte{0x05}) {
          for (Task& t : tasks_) t.tracee.SetInjectionBase(t.regs, v.start + i);
          return Status::Ok();
        }
      }
    }
    return FailedPrecondition("process " + std::to_string(pid()) +
                              " has no `syscall` instruction in its vDSO to inject queries with");
  }

  pid_t pid() const { return tasks_[0].tracee.pid(); }
  std::string dir() const { return ProcDir(pid()); }

  Result<ProcessImage> Dump(PageSink* sink) {
    if (!attached_) return FailedPrecondition("process " + std::to_string(pid()) + " is no longer frozen");
    ProcessImage image;
    image.pid = pid();
    std::vector<ThreadImage> threads(tasks_.size());
    ST_RETURN_IF_ERROR(Step("registers"));
    for (size_t i = 0; i < tasks_.size(); ++i) ST_RETURN_IF_ERROR(DumpRegisters(tasks_[i], threads[i]));
    image.xcr0 = XstateXcr0(threads[0].xstate);
    ST_RETURN_IF_ERROR(Step("memory"));
    MemoryPageSink in_memory(image.pages);
    ST_RETURN_IF_ERROR(DumpMemory(leader(), dir(), image, sink ? *sink : in_memory));
    ST_RETURN_IF_ERROR(Step("injected"));
    ST_RETURN_IF_ERROR(WithScratch([&](uint64_t scratch) {
      ST_RETURN_IF_ERROR(DumpInjected(scratch, image));
      for (size_t i = 0; i < tasks_.size(); ++i)
        ST_RETURN_IF_ERROR(DumpThreadInjected(tasks_[i].tracee, scratch, threads[i]));
      return Status::Ok();
    }));
    ST_RETURN_IF_ERROR(Step("signals"));
    for (size_t i = 0; i < tasks_.size(); ++i) {
      ST_ASSIGN_OR_RETURN(threads[i].pending, PeekSignals(tasks_[i].tracee.pid(), /*shared=*/false));
    }
    ST_ASSIGN_OR_RETURN(image.pending, PeekSignals(pid(), /*shared=*/true));
    ST_RETURN_IF_ERROR(Step("files"));
    ST_RETURN_IF_ERROR(DumpFiles(pid(), dir(), image));
    ST_RETURN_IF_ERROR(Step("attributes"));
    ST_RETURN_IF_ERROR(DumpAttributes(pid(), dir(), image));
    for (size_t i = 1; i < tasks_.size(); ++i) {
      ST_ASSIGN_OR_RETURN(std::string comm, ReadFileToString(dir() + "/task/" + std::to_string(threads[i].tid) + "/comm"));
      threads[i].comm = comm.substr(0, comm.find('\n'));
    }
    SetLeaderThread(image, std::move(threads[0]));
    image.threads.assign(std::make_move_iterator(threads.begin() + 1), std::make_move_iterator(threads.end()));
    ST_RETURN_IF_ERROR(Step("done"));
    return image;
  }

  Status Resume() {
    if (!attached_) return Status::Ok();
    attached_ = false;
    Status first;
    for (Task& t : tasks_) {
      Status s;  // before Init() nothing was changed: plain detach
      if (t.captured) s = t.tracee.SetRegs(RestartFixup(t.regs, /*same_task=*/true));
      if (t.captured && s.ok()) s = t.tracee.SetSigmask(t.sigmask);
      Status d = t.tracee.Detach();
      if (!s.ok()) s = s.WithContext("resume thread " + std::to_string(t.tracee.pid()) + " of process " +
                                     std::to_string(pid()));
      if (first.ok()) first = s.ok() ? d : s;
    }
    return first;
  }

  Status LeaveStopped() {
    if (!attached_) return FailedPrecondition("process " + std::to_string(pid()) + " is no longer frozen");
    if (::kill(pid(), SIGSTOP) != 0) return ErrnoStatus("SIGSTOP to process " + std::to_string(pid()), errno);
    return Resume();
  }

  // Traced threads stay until their tracer reaps them, and the leader is
  // reported only after every other thread is gone: reap them first.
  Status Kill() {
    if (!attached_) return FailedPrecondition("process " + std::to_string(pid()) + " is no longer frozen");
    attached_ = false;
    if (::kill(pid(), SIGKILL) != 0 && errno != ESRCH) return ErrnoStatus("kill process " + std::to_string(pid()), errno);
    for (size_t i = tasks_.size(); i-- > 1;) ST_RETURN_IF_ERROR(tasks_[i].tracee.Kill());
    return tasks_[0].tracee.Kill();
  }

 private:
  Tracee& leader() { return tasks_[0].tracee; }
  Status Step(std::string_view name) { return options_.step_hook ? options_.step_hook(name) : Status::Ok(); }

  Status DumpRegisters(Task& task, ThreadImage& th) {
    const pid_t tid = task.tracee.pid();
    th.tid = tid;
    user_regs_struct regs = RestartFixup(task.regs, /*same_task=*/false);
    ST_RETURN_IF_ERROR(DumpRseq(task.tracee, regs, th));
    th.regs.assign(RawBytes(&regs, sizeof regs).begin(), RawBytes(&regs, sizeof regs).end());
    ST_ASSIGN_OR_RETURN(th.xstate, task.tracee.GetXstate());
    th.blocked = task.sigmask;
    long r = 0;
    if (::syscall(SYS_get_robust_list, tid, &th.robust_list, &r) != 0)
      return ErrnoStatus("get_robust_list of thread " + std::to_string(tid), errno);
    th.robust_list_len = static_cast<uint64_t>(r);
    return Status::Ok();
  }

  // rseq registration; an IP inside a critical section moves to its abort
  // handler, as the kernel would do on preemption.
  Status DumpRseq(Tracee& t, user_regs_struct& regs, ThreadImage& th) {
    RseqConfiguration conf{};
    if (::ptrace(static_cast<__ptrace_request>(kPtraceGetRseqConfiguration), t.pid(), sizeof conf, &conf) < 0)
      return ErrnoStatus("PTRACE_GET_RSEQ_CONFIGURATION on thread " + std::to_string(t.pid()), errno);
    th.rseq_addr = conf.rseq_abi_pointer;
    th.rseq_len = conf.rseq_abi_size;
    th.rseq_sig = conf.signature;
    if (conf.rseq_abi_pointer == 0) return Status::Ok();
    uint64_t cs_addr = 0;
    ST_RETURN_IF_ERROR(t.Read(conf.rseq_abi_pointer + 8, std::as_writable_bytes(std::span(&cs_addr, 1))));
    if (cs_addr == 0) return Status::Ok();
    struct {
      uint32_t version, flags;
      uint64_t start_ip, post_commit_offset, abort_ip;
    } cs{};
    ST_RETURN_IF_ERROR(t.Read(cs_addr, std::as_writable_bytes(std::span(&cs, 1))));
    if (regs.rip >= cs.start_ip && regs.rip < cs.start_ip + cs.post_commit_offset) regs.rip = cs.abort_ip;
    return Status::Ok();
  }

  // Maps one scratch page in the source for injected calls' output and
  // always unmaps it again.
  template <typename F>
  Status WithScratch(F body) {
    ST_ASSIGN_OR_RETURN(uint64_t scratch, leader().Syscall("mmap (scratch page)", SYS_mmap, 0, kPageSize,
                                                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                                           static_cast<uint64_t>(-1), 0));
    Status s = body(scratch);
    Status u = leader().Syscall("munmap (scratch page)", SYS_munmap, scratch, kPageSize).status();
    return s.ok() ? u : s;
  }

  template <typename T>
  static Result<T> Query(Tracee& t, std::string_view what, uint64_t scratch, long nr, uint64_t a1, uint64_t a2,
                         uint64_t a3 = 0, uint64_t a4 = 0) {
    ST_RETURN_IF_ERROR(t.Syscall(what, nr, a1, a2, a3, a4).status());
    T out{};
    ST_RETURN_IF_ERROR(t.Read(scratch, std::as_writable_bytes(std::span(&out, 1))));
    return out;
  }

  // Process-wide: signal dispositions, brk, itimers (through the leader).
  Status DumpInjected(uint64_t scratch, ProcessImage& image) {
    struct KernelSigaction {
      uint64_t handler, flags, restorer, mask;
    };
    for (int sig = 1; sig <= 64; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      ST_ASSIGN_OR_RETURN(auto act, Query<KernelSigaction>(leader(), "rt_sigaction", scratch, SYS_rt_sigaction,
                                                           static_cast<uint64_t>(sig), 0, scratch, 8));
      if (act.handler || act.flags || act.mask) image.actions.push_back({sig, act.handler, act.flags, act.restorer, act.mask});
    }
    ST_ASSIGN_OR_RETURN(image.mm.brk, leader().Syscall("brk(0)", SYS_brk, 0));
    // rlimits asked by the process itself: prlimit() from here on a process
    // of another user needs CAP_SYS_RESOURCE, which containers often drop.
    for (int r = 0; r < 16; ++r) {
      struct {
        uint64_t cur, max;
      } lim{};
      ST_ASSIGN_OR_RETURN(lim, Query<decltype(lim)>(leader(), "prlimit64", scratch, SYS_prlimit64, 0,
                                                    static_cast<uint64_t>(r), 0, scratch));
      image.rlimits[static_cast<size_t>(r)] = {lim.cur, lim.max};
    }
    for (int which = 0; which < 3; ++which) {
      ST_ASSIGN_OR_RETURN(image.itimers[static_cast<size_t>(which)],
                          Query<ItimerValue>(leader(), "getitimer", scratch, SYS_getitimer,
                                             static_cast<uint64_t>(which), scratch));
    }
    return Status::Ok();
  }

  // Per thread: the alternate signal stack and clear_child_tid, each asked
  // in the thread itself.
  static Status DumpThreadInjected(Tracee& t, uint64_t scratch, ThreadImage& th) {
    ST_ASSIGN_OR_RETURN(stack_t ss, Query<stack_t>(t, "sigaltstack", scratch, SYS_sigaltstack, 0, scratch));
    th.altstack_sp = reinterpret_cast<uint64_t>(ss.ss_sp);
    th.altstack_size = ss.ss_size;
    th.altstack_flags = ss.ss_flags;
    ST_ASSIGN_OR_RETURN(th.tid_address,
                        Query<uint64_t>(t, "prctl(PR_GET_TID_ADDRESS)", scratch, SYS_prctl, PR_GET_TID_ADDRESS, scratch));
    return Status::Ok();
  }

  // A thread's own queue, or (shared) the process-wide one.
  static Result<std::vector<PendingSignal>> PeekSignals(pid_t tid, bool shared) {
    std::vector<PendingSignal> out;
    for (uint64_t off = 0;; ++off) {
      PeekSiginfoArgs args{off, shared ? 1u /* PTRACE_PEEKSIGINFO_SHARED */ : 0u, 1};
      PendingSignal p;
      p.shared = shared;
      long n = ::ptrace(PTRACE_PEEKSIGINFO, tid, &args, p.info.data());
      if (n < 0) return ErrnoStatus("PTRACE_PEEKSIGINFO on thread " + std::to_string(tid), errno);
      if (n == 0) break;
      out.push_back(p);
    }
    return out;
  }

  std::vector<Task> tasks_;
  CheckpointOptions options_;
  bool attached_ = true;
};

namespace {

// Seizes every thread. A thread being cloned while we list shows up in the
// next listing (its creator is stopped only after clone returns), so listing
// until nothing new appears catches them all.
Result<std::vector<Task>> SeizeAll(pid_t pid, std::chrono::milliseconds timeout) {
  std::vector<Task> tasks;
  auto release = [&](Status s) {
    for (Task& t : tasks) t.tracee.Detach().IgnoreError();
    return s;
  };
  ST_ASSIGN_OR_RETURN(Tracee leader, Tracee::Seize(pid, timeout));
  tasks.push_back(Task{std::move(leader)});
  for (bool found = true; found;) {
    found = false;
    auto tids = ListTasks(ProcDir(pid));
    if (!tids.ok()) return release(tids.error());
    for (pid_t tid : *tids) {
      if (std::any_of(tasks.begin(), tasks.end(), [&](const Task& t) { return t.tracee.pid() == tid; })) continue;
      auto t = Tracee::Seize(tid, timeout);
      if (!t.ok()) {
        if (::access((ProcDir(pid) + "/task/" + std::to_string(tid)).c_str(), F_OK) != 0) continue;  // it ended
        return release(t.error().WithContext("thread " + std::to_string(tid) + " of process " + std::to_string(pid)));
      }
      tasks.push_back(Task{std::move(*t)});
      found = true;
    }
  }
  std::sort(tasks.begin() + 1, tasks.end(), [](const Task& a, const Task& b) { return a.tracee.pid() < b.tracee.pid(); });
  return tasks;
}

}  // namespace

Result<FrozenProcess> FrozenProcess::Freeze(pid_t pid, const CheckpointOptions& options) {
  ST_RETURN_IF_ERROR(CheckProcess(pid, "/proc", /*frozen_by_caller=*/false));
  ST_ASSIGN_OR_RETURN(std::vector<Task> tasks, SeizeAll(pid, options.timeout));
  auto impl = std::make_unique<Impl>(std::move(tasks), options);
  // Between the first check and the stop it may have changed (a new fd);
  // on any error here the Impl destructor resumes the process.
  ST_RETURN_IF_ERROR(CheckProcess(pid, "/proc", /*frozen_by_caller=*/true));
  ST_RETURN_IF_ERROR(impl->Init());
  return FrozenProcess(std::move(impl));
}

FrozenProcess::FrozenProcess(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FrozenProcess::FrozenProcess(FrozenProcess&&) noexcept = default;
FrozenProcess& FrozenProcess::operator=(FrozenProcess&&) noexcept = default;
FrozenProcess::~FrozenProcess() = default;

pid_t FrozenProcess::pid() const { return impl_->pid(); }
Result<ProcessImage> FrozenProcess::Dump() { return impl_->Dump(nullptr); }
Result<ProcessImage> FrozenProcess::Dump(PageSink& pages) { return impl_->Dump(&pages); }
Status FrozenProcess::Resume() { return impl_->Resume(); }
Status FrozenProcess::LeaveStopped() { return impl_->LeaveStopped(); }
Status FrozenProcess::Kill() { return impl_->Kill(); }

Result<ProcessImage> Checkpoint(pid_t pid, const CheckpointOptions& options) {
  ST_ASSIGN_OR_RETURN(FrozenProcess frozen, FrozenProcess::Freeze(pid, options));
  auto image = frozen.Dump();
  if (!image.ok()) {
    Status resumed = frozen.Resume();
    if (!resumed.ok()) return image.error().WithContext("resume after failure also failed: " + resumed.ToString());
    return image.error();
  }
  ST_RETURN_IF_ERROR(options.leave_running ? frozen.Resume() : frozen.Kill());
  return image;
}

}  // namespace sparetime::migration
