// ProcessImage: everything a checkpoint saves about one process and its
// threads, and its on-disk form (see docs/migration.md, "Image format").
//
// The image is a manifest (the structs below, serialized as JSON) plus a page
// store: a sequence of `page_count` 4 KiB pages, which image_store.h turns
// into deduplicated, sealed chunks. A dump either keeps the page store in
// memory (`pages`) or streams it to a PageSink as it reads the process (then
// `pages` stays empty and memory use is bounded by the sink).
// Memory contents are referenced by PageRun{addr, count, first}: `count`
// consecutive pages starting at virtual address `addr` hold pages
// first..first+count-1 of the store.
//
// Invariants: mappings are sorted and do not overlap; every PageRun lies
// inside its mapping and inside the page store; registers/xstate are the raw
// kernel structs of the source (x86-64), with interrupted syscalls already
// rewritten for restart (see checkpoint.h). The thread-group leader's
// per-thread state is in the top-level fields (as in format 3, which had only
// the leader); `threads` holds every other thread, sorted by TID, each with
// the same kinds of per-thread state (ThreadImage). Credentials are the same
// in every thread (preflight refuses otherwise).
#ifndef SPARETIME_MIGRATION_IMAGE_H_
#define SPARETIME_MIGRATION_IMAGE_H_

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/status.h"

namespace sparetime::migration {

inline constexpr size_t kPageSize = 4096;
// 4: `threads` added. Version 3 manifests (single-threaded) are still read.
inline constexpr uint32_t kImageFormatVersion = 4;
inline constexpr uint32_t kOldestImageFormatVersion = 3;

struct PageRun {
  uint64_t addr = 0;   // first virtual address
  uint64_t count = 0;  // pages
  uint64_t first = 0;  // index of the first page in ProcessImage::pages
};

// What a restore checks before trusting a file by path: a file that changed
// since the checkpoint (other size or mtime) is refused.
struct FileIdentity {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

struct Mapping {
  enum class Kind { kPrivateAnon, kSharedAnon, kPrivateFile, kSharedFile };
  Kind kind = Kind::kPrivateAnon;
  uint64_t start = 0, end = 0;
  int prot = 0;             // PROT_READ | PROT_WRITE | PROT_EXEC
  bool grows_down = false;  // the [stack] VMA (VmFlags "gd")
  bool may_write = false;   // VmFlags "mw": shared file mappings reopen O_RDWR
  std::string path;         // file mappings
  uint64_t file_offset = 0;
  FileIdentity file;
  std::vector<PageRun> pages;  // saved contents (private dirty/anon, shared anon)
};

// [vvar], [vvar_vclock] and [vdso] as the source kernel laid them out. The
// restore maps the target kernel's vDSO at `areas[0].start` and refuses when
// its layout or code differs.
struct VdsoLayout {
  struct Area {
    std::string name;
    uint64_t start = 0, end = 0;
  };
  std::vector<Area> areas;  // sorted by address
  PageRun code;             // the [vdso] bytes, for the comparison
};

struct FdEntry {
  // kDirectory: reopened by path (also O_PATH), at its getdents position.
  enum class Kind { kFile, kDevice, kPipeRead, kPipeWrite, kDup, kDirectory };
  int fd = -1;
  Kind kind = Kind::kFile;
  std::string path;    // kFile, kDevice, kDirectory
  int flags = 0;       // fdinfo flags (O_ACCMODE, O_APPEND, O_NONBLOCK, O_CLOEXEC...)
  uint64_t offset = 0; // kFile, kDirectory
  FileIdentity file;   // kFile
  uint64_t pipe_id = 0;  // kPipe*: the pipe inode, pairs the two ends
  int dup_of = -1;       // kDup: same open file description as this lower fd
};

struct PipeContents {
  uint64_t pipe_id = 0;
  uint32_t capacity = 0;       // F_GETPIPE_SZ
  std::vector<std::byte> data; // buffered, unread bytes
};

struct SignalAction {  // struct kernel_sigaction (x86-64)
  int signo = 0;
  uint64_t handler = 0, flags = 0, restorer = 0, mask = 0;
};

struct PendingSignal {
  bool shared = false;         // process-wide queue (else the thread's)
  std::array<std::byte, 128> info{};  // siginfo_t
};

struct ItimerValue {  // struct itimerval
  int64_t interval_sec = 0, interval_usec = 0, value_sec = 0, value_usec = 0;
};

struct Credentials {
  std::array<uint32_t, 4> uids{}, gids{};  // real, effective, saved, fs
  std::vector<uint32_t> groups;
  uint64_t cap_inheritable = 0, cap_permitted = 0, cap_effective = 0, cap_bounding = 0;
};

// The names of Credentials' ids on the source (credentials.h): the target
// runs the process under the ids these names have there. Empty `users[0]`:
// not known (a format-3 image, or an id without a name on the source).
struct CredentialNames {
  std::array<std::string, 4> users, groups;  // of uids / gids, same order
  std::vector<std::string> supplementary;    // of Credentials::groups
  bool empty() const { return users[0].empty(); }
};

// prctl_mm_map fields (PR_SET_MM_MAP) plus brk from an injected brk(0).
struct MmFields {
  uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  uint64_t start_brk = 0, brk = 0, start_stack = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
};

// The per-thread state of one task of the thread group.
struct ThreadImage {
  pid_t tid = 0;
  std::string comm;                // /proc/PID/task/TID/comm
  std::vector<std::byte> regs;     // struct user_regs_struct (fs_base/gs_base: TLS)
  std::vector<std::byte> xstate;   // NT_X86_XSTATE
  uint64_t blocked = 0;            // signal mask
  std::vector<PendingSignal> pending;  // this thread's queue only (never `shared`)
  uint64_t altstack_sp = 0, altstack_size = 0;
  int altstack_flags = 0;
  uint64_t tid_address = 0;        // clear_child_tid (PR_GET_TID_ADDRESS)
  uint64_t robust_list = 0, robust_list_len = 0;
  uint64_t rseq_addr = 0;
  uint32_t rseq_len = 0, rseq_sig = 0;
};

struct ProcessImage {
  uint32_t version = kImageFormatVersion;
  pid_t pid = 0;
  std::string comm;
  std::string kernel_release;  // uname -r of the source, informational
  // Registers: struct user_regs_struct and the NT_X86_XSTATE regset, raw.
  std::vector<std::byte> regs;
  std::vector<std::byte> xstate;
  uint64_t xcr0 = 0;  // from the xstate's sw_reserved area: restore requires the same
  std::vector<Mapping> mappings;
  VdsoLayout vdso;
  MmFields mm;
  std::vector<std::byte> auxv;
  std::string exe_path;
  FileIdentity exe;
  // Thread state (of the leader; the other threads are in `threads`).
  uint64_t tid_address = 0;                      // set_tid_address
  uint64_t robust_list = 0, robust_list_len = 0; // set_robust_list
  uint64_t rseq_addr = 0;  // 0: no rseq registered
  uint32_t rseq_len = 0, rseq_sig = 0;
  // Signals and timers.
  std::vector<SignalAction> actions;  // only non-default dispositions
  uint64_t blocked = 0;
  std::vector<PendingSignal> pending;
  uint64_t altstack_sp = 0, altstack_size = 0;
  int altstack_flags = 0;
  std::array<ItimerValue, 3> itimers{};  // ITIMER_REAL, _VIRTUAL, _PROF
  // Files and process attributes.
  std::vector<FdEntry> fds;  // sorted by fd
  std::vector<PipeContents> pipes;
  std::string cwd;
  uint32_t umask = 022;
  uint32_t personality = 0;
  std::array<std::array<uint64_t, 2>, 16> rlimits{};  // {cur, max} per RLIMIT_*
  Credentials creds;
  CredentialNames names;
  std::vector<ThreadImage> threads;  // every thread but the leader, sorted by TID
  // The page store: `page_count` pages; their bytes when held in memory
  // (empty, or page_count * kPageSize bytes).
  uint64_t page_count = 0;
  std::vector<std::byte> pages;
};

// The leader's per-thread state as a ThreadImage (tid = pid, its pending
// signals without the process-wide ones), and the reverse.
ThreadImage LeaderThread(const ProcessImage& image);
void SetLeaderThread(ProcessImage& image, ThreadImage leader);

// Receives the page store while a dump reads the process, in store order.
// `data` is whole pages read at virtual address `addr` of the mapping that
// starts at `mapping_start` (chunks are cut on a grid relative to it, so the
// same contents at the same place of a mapping give the same chunks).
class PageSink {
 public:
  virtual ~PageSink() = default;
  virtual Status Append(uint64_t mapping_start, uint64_t addr, std::span<const std::byte> data) = 0;
};

// The manifest: every field but the page store, as JSON. The page store
// travels as chunks (image_store.h). Enum kinds are written by name; a kind
// without a name (or a path that is not UTF-8) fails rather than being
// written as something else, and so does an unknown name when decoding.
Result<std::string> EncodeManifest(const ProcessImage& image);
// Parses a manifest; `page_count` is the size of the page store it refers to.
Result<ProcessImage> DecodeManifest(std::string_view json, uint64_t page_count);

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_IMAGE_H_
