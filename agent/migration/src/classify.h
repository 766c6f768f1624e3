// What stage 1 can move: the classification of one mapping or fd, shared by
// Preflight (refuse early) and the dump (decide how to save it).
//
// A refusal is kFailedPrecondition whose message names the fd or mapping and
// why; callers add "cannot checkpoint process N".
#ifndef SPARETIME_MIGRATION_CLASSIFY_H_
#define SPARETIME_MIGRATION_CLASSIFY_H_

#include <sys/types.h>

#include <string>

#include "proc_files.h"
#include "sparetime/base/status.h"
#include "sparetime/migration/image.h"

namespace sparetime::migration {

enum class VmaClass { kPrivateAnon, kSharedAnon, kPrivateFile, kSharedFile, kVdsoArea, kSkip };

Result<VmaClass> ClassifyVma(const Vma& vma);

// `link` is readlink(/proc/PID/fd/N); never returns kDup (that needs kcmp).
Result<FdEntry::Kind> ClassifyFd(const std::string& proc_dir, int fd, const std::string& link);

// Preflight's checks. With `frozen_by_caller` the process is expected to be
// in our ptrace stop (state 't', TracerPid = us) instead of untraced.
// `command` is named in a refusal ("cannot checkpoint process N (comm): ...").
Status CheckProcess(pid_t pid, const std::string& proc_root, bool frozen_by_caller,
                    const std::string& command = "checkpoint");

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_CLASSIFY_H_
