// Restore steps (restore.cc drives them in order). All act on the stub
// through `Injector`: a Tracee plus the scratch page the helper mapped next to
// its syscall gadget, used to pass paths and structs to injected calls.
#ifndef SPARETIME_MIGRATION_RESTORE_INTERNAL_H_
#define SPARETIME_MIGRATION_RESTORE_INTERNAL_H_

#include <span>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/migration/image.h"
#include "tracee.h"

namespace sparetime::migration {

class Injector {
 public:
  Injector(Tracee& tracee, uint64_t scratch) : tracee_(tracee), scratch_(scratch) {}
  Tracee& tracee() { return tracee_; }
  // Copies `data` to the scratch page (at `offset`) and returns its address.
  Result<uint64_t> Put(std::span<const std::byte> data, size_t offset = 0);
  Result<uint64_t> PutString(const std::string& s, size_t offset = 0);
  template <typename T>
  Result<uint64_t> PutStruct(const T& v, size_t offset = 0) {
    return Put(std::as_bytes(std::span(&v, 1)), offset);
  }

 private:
  Tracee& tracee_;
  uint64_t scratch_;
};

// Maps every image mapping at its address, writes the pages, sets the final
// protections, then PR_SET_MM_MAP (mm fields, auxv, exe).
Status RestoreMappings(Injector& in, const ProcessImage& image);
Status RestoreMmFields(Injector& in, const ProcessImage& image);

// Closes the stub's inherited fds, then reopens files and devices, recreates
// pipes (with their buffered data) and dups, at the image's fd numbers.
Status RestoreFiles(Injector& in, const ProcessImage& image);

// Process-wide state through the leader: cwd, umask, personality, comm,
// signal actions, itimers, pending signals (process-wide and the leader's),
// rlimits.
Status RestoreTaskState(Injector& in, const ProcessImage& image);

// One thread's own state, injected in that thread: comm (when `set_name`),
// altstack, tid address (clear_child_tid), robust list, rseq.
Status RestoreThreadState(Injector& in, const ThreadImage& th, bool set_name);

// A thread's own pending signals, queued by the leader (the kernel lets only
// the thread-group leader queue kernel-style siginfo to its group).
Status QueueThreadSignals(Injector& leader, pid_t tgid, const ThreadImage& th);

// Credentials (bounding set, groups, ids, capabilities) of the thread `in`
// drives. Last: afterwards it may lack the privileges the other steps need.
Status RestoreCredentials(Injector& in, const ProcessImage& image);

// clone3(CLONE_THREAD, set_tid = th.tid) injected in the leader for every
// thread of the image; returns the new threads in their first ptrace stop,
// in image order.
Result<std::vector<Tracee>> CreateThreads(Injector& leader, const ProcessImage& image);

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_RESTORE_INTERNAL_H_
