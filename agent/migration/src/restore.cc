// Restore orchestration (see restore.h): compatibility checks, the stub
// child (clone3 set_tid + PTRACE_TRACEME + execve), the gadget page, the
// address-space swap (stub mappings out, vDSO at the image's address), then
// the steps in restore_memory.cc / restore_state.cc, the other threads
// (restore_threads.cc), each thread's state and credentials, final
// registers, detach.
#include "sparetime/migration/restore.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "dump.h"
#include "proc_files.h"
#include "restore_internal.h"
#include "util.h"

namespace sparetime::migration {
namespace {

constexpr uint64_t kTaskSize = 0x7ffffffff000;  // 47-bit user address space
constexpr uint64_t kGadgetSearchStart = 0x10000000;
constexpr uint64_t kGadgetSize = 2 * kPageSize;  // gadget page + scratch page
constexpr long kArchMapVdso64 = 0x2003;

struct CloneArgs {  // struct clone_args (clone3), up to set_tid_size
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size;
};

Status CheckFile(const std::string& what, const std::string& path, const FileIdentity& want) {
  auto have = StatIdentity(path);
  if (!have.ok())
    return FailedPrecondition("cannot restore: " + what + " " + path + " is missing on this host (" +
                              have.error().message() + ")");
  if (have->size != want.size || have->mtime_ns != want.mtime_ns)
    return FailedPrecondition("cannot restore: " + what + " " + path + " changed since the checkpoint (size " +
                              std::to_string(want.size) + " -> " + std::to_string(have->size) + ", mtime " +
                              std::to_string(want.mtime_ns) + " -> " + std::to_string(have->mtime_ns) +
                              "); the process needs the identical file");
  return Status::Ok();
}

Status CheckFiles(const ProcessImage& image) {
  ST_RETURN_IF_ERROR(CheckFile("executable", image.exe_path, image.exe));
  for (const Mapping& m : image.mappings)
    if (!m.path.empty()) ST_RETURN_IF_ERROR(CheckFile("mapped file", m.path, m.file));
  for (const FdEntry& e : image.fds) {
    const std::string fd = std::to_string(e.fd);
    switch (e.kind) {
      case FdEntry::Kind::kFile:
        ST_RETURN_IF_ERROR(CheckFile("open file (fd " + fd + ")", e.path, e.file));
        break;
      case FdEntry::Kind::kDirectory: {  // only its existence: entries come and go, size and mtime with them
        struct stat st {};
        if (::stat(e.path.c_str(), &st) != 0)
          return FailedPrecondition("cannot restore: open directory (fd " + fd + ") " + e.path +
                                    " is missing on this host (" + std::strerror(errno) + "); create it");
        if (!S_ISDIR(st.st_mode))
          return FailedPrecondition("cannot restore: open directory (fd " + fd + ") " + e.path +
                                    " is not a directory on this host");
        break;
      }
      case FdEntry::Kind::kDevice:  // reopened by path; a missing device fails the open
      case FdEntry::Kind::kPipeRead:
      case FdEntry::Kind::kPipeWrite:
      case FdEntry::Kind::kDup:
        break;
    }
  }
  return Status::Ok();
}

// clone3(set_tid = pid) child that becomes the traced stub.
Result<pid_t> SpawnStub(pid_t pid, const std::string& stub) {
  if (::access(stub.c_str(), X_OK) != 0) return ErrnoStatus("restore stub " + stub, errno);
  const char* argv[] = {"sparetime-restore-stub", nullptr};
  const char* envp[] = {nullptr};
  pid_t want = pid;
  CloneArgs args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(&want);
  args.set_tid_size = 1;
  long r = ::syscall(SYS_clone3, &args, sizeof args);
  if (r == 0) {  // child: raw syscalls only
    ::syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
    ::syscall(SYS_execve, stub.c_str(), argv, envp);
    ::syscall(SYS_exit_group, 127);
  }
  if (r < 0) {
    int err = errno;
    if (err == EEXIST)
      return AlreadyExists("cannot restore process " + std::to_string(pid) + ": PID " + std::to_string(pid) +
                           " is in use on this host; stop that process or restore on another host");
    if (err == EPERM)
      return PermissionDenied("cannot restore process " + std::to_string(pid) +
                              ": choosing the PID needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE");
    return ErrnoStatus("clone3(set_tid=" + std::to_string(pid) + ")", err);
  }
  return static_cast<pid_t>(r);
}

// The stub's vDSO must equal the image's: same area names and sizes at the
// same relative offsets, and the same code.
Status CheckVdso(Tracee& t, const ProcessImage& image, const std::vector<Vma>& stub_vmas) {
  std::vector<VdsoLayout::Area> ours;
  for (const Vma& v : stub_vmas)
    if (v.path == "[vvar]" || v.path == "[vvar_vclock]" || v.path == "[vdso]") ours.push_back({v.path, v.start, v.end});
  const auto& theirs = image.vdso.areas;
  auto differs = [&](std::string why) {
    return FailedPrecondition("cannot restore: this kernel's vDSO differs from the source's (" + why +
                              "; source kernel " + image.kernel_release +
                              "); restore on a host running the same kernel build");
  };
  if (ours.size() != theirs.size() || ours.empty()) return differs("different vvar/vdso areas");
  for (size_t i = 0; i < ours.size(); ++i) {
    if (ours[i].name != theirs[i].name || ours[i].end - ours[i].start != theirs[i].end - theirs[i].start ||
        ours[i].start - ours[0].start != theirs[i].start - theirs[0].start)
      return differs("layout of " + theirs[i].name);
    if (ours[i].name != "[vdso]") continue;
    std::vector<std::byte> code(ours[i].end - ours[i].start);
    ST_RETURN_IF_ERROR(t.Read(ours[i].start, code));
    auto saved = std::span(image.pages).subspan(image.vdso.code.first * kPageSize, image.vdso.code.count * kPageSize);
    if (code.size() != saved.size() || !std::equal(code.begin(), code.end(), saved.begin()))
      return differs("different vDSO code");
  }
  return Status::Ok();
}

// Lowest kGadgetSize range at or above kGadgetSearchStart free in both layouts.
uint64_t PickGadget(const ProcessImage& image, const std::vector<Vma>& stub_vmas) {
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const Mapping& m : image.mappings) used.emplace_back(m.start, m.end);
  for (const auto& a : image.vdso.areas) used.emplace_back(a.start, a.end);
  for (const Vma& v : stub_vmas) used.emplace_back(v.start, v.end);
  std::sort(used.begin(), used.end());
  uint64_t at = kGadgetSearchStart;
  for (auto [start, end] : used)
    if (start < at + kGadgetSize && end > at) at = end;
  return at;
}

Status CheckXstate(Tracee& t, const ProcessImage& image) {
  ST_ASSIGN_OR_RETURN(std::vector<std::byte> ours, t.GetXstate());
  const uint64_t xcr0 = XstateXcr0(ours);
  if (ours.size() != image.xstate.size() || xcr0 != image.xcr0)
    return FailedPrecondition("cannot restore: this CPU's xsave layout (XCR0 " + HexAddr(xcr0) + ", " +
                              std::to_string(ours.size()) + " bytes) differs from the source's (XCR0 " +
                              HexAddr(image.xcr0) + ", " + std::to_string(image.xstate.size()) +
                              " bytes); restore on a CPU with the same features");
  return Status::Ok();
}

// Replaces the stub's address space with the gadget page alone, then maps
// the vDSO at the image's address.
Result<uint64_t> SwapAddressSpace(Tracee& t, const ProcessImage& image) {
  const std::string dir = ProcDir(t.pid());
  ST_ASSIGN_OR_RETURN(std::vector<Vma> stub_vmas, ReadSmaps(dir));
  ST_RETURN_IF_ERROR(CheckVdso(t, image, stub_vmas));
  const uint64_t g = PickGadget(image, stub_vmas);
  ST_ASSIGN_OR_RETURN(uint64_t mapped, t.Syscall("mmap (gadget page)", SYS_mmap, g, kGadgetSize,
                                                 PROT_READ | PROT_WRITE | PROT_EXEC,
                                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                                 static_cast<uint64_t>(-1), 0));
  if (mapped != g) return Internal("gadget page landed at " + HexAddr(mapped) + " instead of " + HexAddr(g));
  const std::byte gadget[] = {std::byte{0x0f}, std::byte{0x05}, std::byte{0xcc}};  // syscall; int3
  ST_RETURN_IF_ERROR(t.Write(g, gadget));
  ST_ASSIGN_OR_RETURN(user_regs_struct regs, t.GetRegs());
  t.SetInjectionBase(regs, g);
  ST_RETURN_IF_ERROR(t.Syscall("munmap (stub below the gadget)", SYS_munmap, 0, g).status());
  ST_RETURN_IF_ERROR(
      t.Syscall("munmap (stub above the gadget)", SYS_munmap, g + kGadgetSize, kTaskSize - g - kGadgetSize).status());
  ST_RETURN_IF_ERROR(
      t.Syscall("arch_prctl(ARCH_MAP_VDSO_64)", SYS_arch_prctl, kArchMapVdso64, image.vdso.areas[0].start).status());
  ST_ASSIGN_OR_RETURN(std::vector<Vma> now, ReadSmaps(dir));
  std::erase_if(now, [](const Vma& v) { return v.path == "[vsyscall]"; });  // not a real VMA
  size_t matched = 0;
  for (const Vma& v : now)
    for (const auto& a : image.vdso.areas)
      if (v.path == a.name && v.start == a.start && v.end == a.end) ++matched;
  if (matched != image.vdso.areas.size() || now.size() != matched + 1) {
    std::string layout;
    for (const Vma& v : now) layout += " [" + v.Describe() + "]";
    return Internal("after ARCH_MAP_VDSO_64 the restored process's layout is not the gadget plus the vDSO at " +
                    HexAddr(image.vdso.areas[0].start) + ":" + layout);
  }
  return g + kPageSize;  // the scratch page
}

Status SetFinalState(Tracee& t, const ThreadImage& th) {
  user_regs_struct regs{};
  std::memcpy(&regs, th.regs.data(), sizeof regs);
  ST_RETURN_IF_ERROR(t.SetXstate(th.xstate));
  ST_RETURN_IF_ERROR(t.SetRegs(regs));
  return t.SetSigmask(th.blocked);
}

// Every thread gets its registers, xstate and mask; the other threads are
// let go first, the leader last.
Status FinishAndDetach(Tracee& t, std::vector<Tracee>& threads, const ProcessImage& image, uint64_t gadget) {
  // munmap of the page holding the running `syscall`: we stop at its exit and
  // replace every register before anything executes there again (the other
  // threads sit in their ptrace stops and never run there).
  ST_ASSIGN_OR_RETURN(int64_t r, t.RawSyscall(SYS_munmap, {gadget, kGadgetSize, 0, 0, 0, 0}));
  if (IsSyscallError(r)) return ErrnoStatus("injected munmap (gadget page)", static_cast<int>(-r));
  for (size_t i = 0; i < threads.size(); ++i) ST_RETURN_IF_ERROR(SetFinalState(threads[i], image.threads[i]));
  ST_RETURN_IF_ERROR(SetFinalState(t, LeaderThread(image)));
  for (Tracee& thread : threads) ST_RETURN_IF_ERROR(thread.Detach());
  return t.Detach();
}

Status RestoreInto(Tracee& t, const ProcessImage& image) {
  ST_ASSIGN_OR_RETURN(user_regs_struct regs, t.GetRegs());
  std::byte entry[2];
  ST_RETURN_IF_ERROR(t.Read(regs.rip, entry));
  if (entry[0] != std::byte{0x0f} || entry[1] != std::byte{0x05})
    return FailedPrecondition("the restore stub does not start with a syscall instruction (wrong stub binary?)");
  t.SetInjectionBase(regs, regs.rip);
  ST_RETURN_IF_ERROR(t.SetSigmask(~0ull));  // nothing is delivered until the final mask
  ST_RETURN_IF_ERROR(CheckXstate(t, image));
  ST_ASSIGN_OR_RETURN(uint64_t scratch, SwapAddressSpace(t, image));
  Injector in(t, scratch);
  ST_RETURN_IF_ERROR(RestoreMappings(in, image));
  ST_RETURN_IF_ERROR(RestoreMmFields(in, image));
  ST_RETURN_IF_ERROR(RestoreFiles(in, image));
  ST_RETURN_IF_ERROR(RestoreTaskState(in, image));
  ST_ASSIGN_OR_RETURN(std::vector<Tracee> threads, CreateThreads(in, image));
  ST_RETURN_IF_ERROR(RestoreThreadState(in, LeaderThread(image), /*set_name=*/false));
  for (size_t i = 0; i < threads.size(); ++i) {
    Injector thread(threads[i], scratch);
    ST_RETURN_IF_ERROR(RestoreThreadState(thread, image.threads[i], /*set_name=*/true));
    ST_RETURN_IF_ERROR(QueueThreadSignals(in, image.pid, image.threads[i]));
    ST_RETURN_IF_ERROR(RestoreCredentials(thread, image));
  }
  ST_RETURN_IF_ERROR(RestoreCredentials(in, image));
  return FinishAndDetach(t, threads, image, scratch - kPageSize);
}

}  // namespace

std::string DefaultStubPath() {
  if (const char* env = std::getenv("SPARETIME_RESTORE_STUB"); env && *env) return env;
  // Installed: <prefix>/bin/sparetime, <prefix>/sbin/sparetimed ->
  // <prefix>/lib/sparetime/sparetime-restore-stub.
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<size_t>(n));
    dir.resize(dir.find_last_of('/'));
    const std::string installed = dir.substr(0, dir.find_last_of('/')) + "/lib/sparetime/sparetime-restore-stub";
    if (::access(installed.c_str(), X_OK) == 0) return installed;
  }
  return SPARETIME_RESTORE_STUB;  // the build tree's copy
}

Result<pid_t> Restore(const ProcessImage& image, const RestoreOptions& options) {
  if (image.regs.size() != sizeof(user_regs_struct) || image.vdso.areas.empty())
    return InvalidArgument("cannot restore: the image has no registers or vDSO layout");
  for (const ThreadImage& th : image.threads)
    if (th.regs.size() != sizeof(user_regs_struct) || th.xstate.size() != image.xstate.size())
      return InvalidArgument("cannot restore: thread " + std::to_string(th.tid) + " has no registers");
  if (options.check_files) ST_RETURN_IF_ERROR(CheckFiles(image));
  const std::string stub = options.stub_path.empty() ? DefaultStubPath() : options.stub_path;
  ST_ASSIGN_OR_RETURN(pid_t pid, SpawnStub(image.pid, stub));
  auto tracee = Tracee::FromExecStop(pid, options.timeout);
  Status s = tracee.ok() ? RestoreInto(*tracee, image) : tracee.error();
  if (s.ok()) return pid;
  // Kill and reap the half-built process; nothing else was touched. Its
  // traced threads are reaped first: the leader is reported after them.
  ::kill(pid, SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  for (const ThreadImage& th : image.threads)
    while (::waitpid(th.tid, nullptr, __WALL | WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
      ::usleep(1000);
  while (::waitpid(pid, nullptr, __WALL | WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
    ::usleep(1000);
  return s.WithContext("restore of process " + std::to_string(image.pid) + " (" + image.comm + ")");
}

}  // namespace sparetime::migration
