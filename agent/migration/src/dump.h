// The dump steps behind FrozenProcess::Dump, each filling part of a
// ProcessImage from a process frozen by ptrace.
#ifndef SPARETIME_MIGRATION_DUMP_H_
#define SPARETIME_MIGRATION_DUMP_H_

#include <sys/types.h>

#include <map>
#include <span>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/migration/image.h"
#include "tracee.h"

namespace sparetime::migration {

// Mappings, their saved pages (via /proc/PID/pagemap, streamed to `sink`),
// and the vDSO layout.
Status DumpMemory(Tracee& tracee, const std::string& proc_dir, ProcessImage& image, PageSink& sink);

// fds (files, devices, pipes with their buffered data), detecting dup'ed
// descriptions with kcmp.
Status DumpFiles(pid_t pid, const std::string& proc_dir, ProcessImage& image);

// From /proc and prlimit: mm fields (except brk), auxv, exe, cwd, umask,
// personality, comm, rlimits, credentials, kernel release.
Status DumpAttributes(pid_t pid, const std::string& proc_dir, ProcessImage& image);

// The Uid/Gid/Groups/Cap* fields of a parsed /proc/PID/status.
Status ParseCredentials(std::map<std::string, std::string>& status, Credentials& creds);

// Size and mtime of `path` (following symlinks, so /proc/PID/fd/N works).
Result<FileIdentity> StatIdentity(const std::string& path);

// Appends whole pages (at `addr` of the mapping starting at `mapping_start`)
// to the image's page store through `sink`; returns the first index.
Result<uint64_t> AppendPages(ProcessImage& image, PageSink& sink, uint64_t mapping_start, uint64_t addr,
                             std::span<const std::byte> data);

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_DUMP_H_
