// FrozenProcess and Checkpoint (see checkpoint.h): freezing, the injected
// state queries (signal handlers, altstack, tid address, brk, itimers), the
// syscall-restart rewrite, rseq, pending signals, and putting the source
// back exactly as it was.
#include "sparetime/migration/checkpoint.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

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

}  // namespace

class FrozenProcess::Impl {
 public:
  Impl(Tracee tracee, CheckpointOptions options) : tracee_(std::move(tracee)), options_(std::move(options)) {}
  ~Impl() {
    if (attached_) Resume().IgnoreError();
  }

  Status Init() {
    ST_ASSIGN_OR_RETURN(regs_, tracee_.GetRegs());
    ST_ASSIGN_OR_RETURN(sigmask_, tracee_.GetSigmask());
    captured_ = true;
    // Keep every signal pending while we inject; they are delivered after
    // the source resumes, or saved as pending for the restore.
    ST_RETURN_IF_ERROR(tracee_.SetSigmask(~0ull));
    ST_ASSIGN_OR_RETURN(std::vector<Vma> vmas, ReadSmaps(dir()));
    for (const Vma& v : vmas) {
      if (v.path != "[vdso]") continue;
      std::vector<std::byte> code(v.end - v.start);
      ST_RETURN_IF_ERROR(tracee_.Read(v.start, code));
      for (size_t i = 0; i + 1 < code.size(); ++i) {
        if (code[i] == std::byte{0x0f} && code[i + 1] == std::byte{0x05}) {
          tracee_.SetInjectionBase(regs_, v.start + i);
          return Status::Ok();
        }
      }
    }
    return FailedPrecondition("process " + std::to_string(pid()) +
                              " has no `syscall` instruction in its vDSO to inject queries with");
  }

  pid_t pid() const { return tracee_.pid(); }
  std::string dir() const { return ProcDir(pid()); }

  Result<ProcessImage> Dump(PageSink* sink) {
    if (!attached_) return FailedPrecondition("process " + std::to_string(pid()) + " is no longer frozen");
    ProcessImage image;
    image.pid = pid();
    ST_RETURN_IF_ERROR(Step("registers"));
    ST_RETURN_IF_ERROR(DumpRegisters(image));
    ST_RETURN_IF_ERROR(Step("memory"));
    MemoryPageSink in_memory(image.pages);
    ST_RETURN_IF_ERROR(DumpMemory(tracee_, dir(), image, sink ? *sink : in_memory));
    ST_RETURN_IF_ERROR(Step("injected"));
    ST_RETURN_IF_ERROR(WithScratch([&](uint64_t scratch) { return DumpInjected(scratch, image); }));
    ST_RETURN_IF_ERROR(Step("signals"));
    ST_RETURN_IF_ERROR(DumpPendingSignals(image));
    ST_RETURN_IF_ERROR(Step("files"));
    ST_RETURN_IF_ERROR(DumpFiles(pid(), dir(), image));
    ST_RETURN_IF_ERROR(Step("attributes"));
    ST_RETURN_IF_ERROR(DumpAttributes(pid(), dir(), image));
    ST_RETURN_IF_ERROR(Step("done"));
    return image;
  }

  Status Resume() {
    if (!attached_) return Status::Ok();
    Status s;  // before Init() nothing was changed: plain detach
    if (captured_) s = tracee_.SetRegs(RestartFixup(regs_, /*same_task=*/true));
    if (captured_ && s.ok()) s = tracee_.SetSigmask(sigmask_);
    Status d = tracee_.Detach();
    attached_ = false;
    if (!s.ok()) return s.WithContext("resume process " + std::to_string(pid()));
    return d;
  }

  Status LeaveStopped() {
    if (!attached_) return FailedPrecondition("process " + std::to_string(pid()) + " is no longer frozen");
    if (::kill(pid(), SIGSTOP) != 0) return ErrnoStatus("SIGSTOP to process " + std::to_string(pid()), errno);
    return Resume();
  }

  Status Kill() {
    if (!attached_) return FailedPrecondition("process " + std::to_string(pid()) + " is no longer frozen");
    attached_ = false;
    return tracee_.Kill();
  }

 private:
  Status Step(std::string_view name) { return options_.step_hook ? options_.step_hook(name) : Status::Ok(); }

  Status DumpRegisters(ProcessImage& image) {
    user_regs_struct regs = RestartFixup(regs_, /*same_task=*/false);
    ST_RETURN_IF_ERROR(DumpRseq(regs, image));
    image.regs.assign(RawBytes(&regs, sizeof regs).begin(), RawBytes(&regs, sizeof regs).end());
    ST_ASSIGN_OR_RETURN(image.xstate, tracee_.GetXstate());
    image.xcr0 = XstateXcr0(image.xstate);
    image.blocked = sigmask_;
    long r = 0;
    if (::syscall(SYS_get_robust_list, pid(), &image.robust_list, &r) != 0)
      return ErrnoStatus("get_robust_list of process " + std::to_string(pid()), errno);
    image.robust_list_len = static_cast<uint64_t>(r);
    return Status::Ok();
  }

  // rseq registration; an IP inside a critical section moves to its abort
  // handler, as the kernel would do on preemption.
  Status DumpRseq(user_regs_struct& regs, ProcessImage& image) {
    RseqConfiguration conf{};
    if (::ptrace(static_cast<__ptrace_request>(kPtraceGetRseqConfiguration), pid(), sizeof conf, &conf) < 0)
      return ErrnoStatus("PTRACE_GET_RSEQ_CONFIGURATION on process " + std::to_string(pid()), errno);
    image.rseq_addr = conf.rseq_abi_pointer;
    image.rseq_len = conf.rseq_abi_size;
    image.rseq_sig = conf.signature;
    if (conf.rseq_abi_pointer == 0) return Status::Ok();
    uint64_t cs_addr = 0;
    ST_RETURN_IF_ERROR(tracee_.Read(conf.rseq_abi_pointer + 8, std::as_writable_bytes(std::span(&cs_addr, 1))));
    if (cs_addr == 0) return Status::Ok();
    struct {
      uint32_t version, flags;
      uint64_t start_ip, post_commit_offset, abort_ip;
    } cs{};
    ST_RETURN_IF_ERROR(tracee_.Read(cs_addr, std::as_writable_bytes(std::span(&cs, 1))));
    if (regs.rip >= cs.start_ip && regs.rip < cs.start_ip + cs.post_commit_offset) regs.rip = cs.abort_ip;
    return Status::Ok();
  }

  // Maps one scratch page in the source for injected calls' output and
  // always unmaps it again.
  template <typename F>
  Status WithScratch(F body) {
    ST_ASSIGN_OR_RETURN(uint64_t scratch, tracee_.Syscall("mmap (scratch page)", SYS_mmap, 0, kPageSize,
                                                          PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                                          static_cast<uint64_t>(-1), 0));
    Status s = body(scratch);
    Status u = tracee_.Syscall("munmap (scratch page)", SYS_munmap, scratch, kPageSize).status();
    return s.ok() ? u : s;
  }

  template <typename T>
  Result<T> Query(std::string_view what, uint64_t scratch, long nr, uint64_t a1, uint64_t a2, uint64_t a3 = 0,
                  uint64_t a4 = 0) {
    ST_RETURN_IF_ERROR(tracee_.Syscall(what, nr, a1, a2, a3, a4).status());
    T out{};
    ST_RETURN_IF_ERROR(tracee_.Read(scratch, std::as_writable_bytes(std::span(&out, 1))));
    return out;
  }

  Status DumpInjected(uint64_t scratch, ProcessImage& image) {
    struct KernelSigaction {
      uint64_t handler, flags, restorer, mask;
    };
    for (int sig = 1; sig <= 64; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      ST_ASSIGN_OR_RETURN(auto act, Query<KernelSigaction>("rt_sigaction", scratch, SYS_rt_sigaction,
                                                           static_cast<uint64_t>(sig), 0, scratch, 8));
      if (act.handler || act.flags || act.mask) image.actions.push_back({sig, act.handler, act.flags, act.restorer, act.mask});
    }
    ST_ASSIGN_OR_RETURN(stack_t ss, Query<stack_t>("sigaltstack", scratch, SYS_sigaltstack, 0, scratch));
    image.altstack_sp = reinterpret_cast<uint64_t>(ss.ss_sp);
    image.altstack_size = ss.ss_size;
    image.altstack_flags = ss.ss_flags;
    ST_ASSIGN_OR_RETURN(image.tid_address,
                        Query<uint64_t>("prctl(PR_GET_TID_ADDRESS)", scratch, SYS_prctl, PR_GET_TID_ADDRESS, scratch));
    ST_ASSIGN_OR_RETURN(image.mm.brk, tracee_.Syscall("brk(0)", SYS_brk, 0));
    for (int which = 0; which < 3; ++which) {
      ST_ASSIGN_OR_RETURN(image.itimers[static_cast<size_t>(which)],
                          Query<ItimerValue>("getitimer", scratch, SYS_getitimer, static_cast<uint64_t>(which), scratch));
    }
    return Status::Ok();
  }

  Status DumpPendingSignals(ProcessImage& image) {
    for (uint32_t flags : {0u, 1u /* PTRACE_PEEKSIGINFO_SHARED */}) {
      for (uint64_t off = 0;; ++off) {
        PeekSiginfoArgs args{off, flags, 1};
        PendingSignal p;
        p.shared = flags != 0;
        long n = ::ptrace(PTRACE_PEEKSIGINFO, pid(), &args, p.info.data());
        if (n < 0) return ErrnoStatus("PTRACE_PEEKSIGINFO on process " + std::to_string(pid()), errno);
        if (n == 0) break;
        image.pending.push_back(p);
      }
    }
    return Status::Ok();
  }

  Tracee tracee_;
  CheckpointOptions options_;
  user_regs_struct regs_{};
  uint64_t sigmask_ = 0;
  bool captured_ = false;  // regs_ and sigmask_ hold the source's values
  bool attached_ = true;
};

Result<FrozenProcess> FrozenProcess::Freeze(pid_t pid, const CheckpointOptions& options) {
  ST_RETURN_IF_ERROR(CheckProcess(pid, "/proc", /*frozen_by_caller=*/false));
  ST_ASSIGN_OR_RETURN(Tracee tracee, Tracee::Seize(pid, options.timeout));
  auto impl = std::make_unique<Impl>(std::move(tracee), options);
  // Between the first check and the stop it may have changed (a new thread);
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
