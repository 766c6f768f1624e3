// ops::Migrate: move a running process to another agent — the protocol of
// `sparetime migrate PID --to HOST`, callable by sparetimed too.
//
//   preflight   the process can be checkpointed (before anything connects)
//   connect     an authenticated session to HOST as this agent; an empty
//               query lets HOST check its policy before anything stops, and
//               MigrateCheck whether the process may run there as who it is
//               (its user and groups by name; root or capabilities only when
//               HOST's policy allows them)
//   freeze      the source stops (ptrace)
//   dump+send   pages are sealed and sent as they are read (only what HOST's
//               migration cache lacks), then the index and the key
//   restore     HOST restores the process with its PID and confirms
//   kill        only then is the source killed
//
// Invariants (the source never runs twice, and never is lost):
//   - any failure before the restore request resumes the source
//     (MigrateOutcome::source = kRunning) and the error says so;
//   - a session lost while HOST restores leaves the source stopped
//     (kStopped): it may run on HOST already; the error says what to check;
//   - a refusal by HOST resumes the source;
//   - the source is killed (kKilled) only after HOST confirmed.
#ifndef SPARETIME_OPS_MIGRATE_H_
#define SPARETIME_OPS_MIGRATE_H_

#include <sys/types.h>

#include <string>

#include "sparetime/base/status.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/records.h"
#include "sparetime/migration/image_store.h"
#include "sparetime/peer/peer_client.h"
#include "sparetime/transport/identity.h"

namespace sparetime::ops {

struct MigrateRequest {
  pid_t pid = 0;
  std::string to;  // the target agent's name in the directory
  const config::AgentConfig* config = nullptr;  // this agent (name, state_dir)
  const directory::DirectoryView* view = nullptr;  // where `to` is
  std::string directory_source;                     // for messages ("ldap://...")
  const transport::Identity* identity = nullptr;    // this agent's key pair
};

enum class SourceState { kUntouched, kRunning, kStopped, kKilled };

struct MigrateReport {
  pid_t pid = 0;
  std::string comm;
  std::string to;
  uint32_t target_pid = 0;
  migration::StoreStats stats;
  double dump_ms = 0, send_ms = 0, restore_ms = 0, frozen_ms = 0;
};

// REQUIRES: config, view and identity set. `source` (may be null) says what
// became of the source process, on success and on failure.
Result<MigrateReport> Migrate(const MigrateRequest& request, SourceState* source = nullptr);

// The agent named `host` in `view` as a peer endpoint; kInvalidArgument for
// this agent itself, kNotFound (naming `source`) when it is not there.
Result<peer::PeerEndpoint> FindAgent(const directory::DirectoryView& view,
                                     const std::string& self, const std::string& host,
                                     const std::string& source);

// `dir`/key (created with `dir` on first use): this host's migration key.
Result<migration::MigrationKey> LoadMigrationKey(const std::string& dir);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_MIGRATE_H_
