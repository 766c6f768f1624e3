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

// cwd, umask, personality, comm, signal actions, altstack, tid address,
// robust list, rseq, itimers, pending signals, rlimits, then credentials.
Status RestoreTaskState(Injector& in, const ProcessImage& image);

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_RESTORE_INTERNAL_H_
