// MigrationService: sparetimed's side of `sparetime migrate` (the peer
// service's MigrationHandler). A source agent the policy allows fills this
// agent's migration cache with sealed page chunks, then asks for the
// restore; the service loads the image with the key sent in that request
// (used for this restore only, never stored), checks that the process's
// files exist here with the same identity, restores it with its PID, and
// replies only once the process runs. Restored processes are children of
// sparetimed: a reaper thread collects them and logs how they ended.
//
// Layout: <state_dir>/migration/from-<source>/ is the PackStore of chunks
// from agent <source> (migration/cache.h): it is kept (a later migration of
// a similar process sends only what is new), dropped after a restore when it
// exceeds its size limit and at start when unused for long, and may be
// deleted at any time.
//
// Who runs it (docs/migration.md "Who may run what"): the process runs under
// the ids its user and group names have on this host (a name missing here is
// refused), and as root or with capabilities only when `privileged` allows
// it. Check answers the source's MigrateCheck with the same rules before it
// freezes anything; Restore applies them again to the image itself.
//
// A /proc that does not belong to sparetimed's PID namespace is detected at
// start (logged) and every migration is then refused, saying so. Each refusal
// (policy or /proc) is logged, one line per request.
//
// Invariants: every request is checked against the policy first (a refused
// source can neither fill the cache nor restore); a restore failure leaves
// nothing running. Thread safety: any session thread; stores are per source.
#ifndef SPARETIME_AGENT_DAEMON_MIGRATION_SERVICE_H_
#define SPARETIME_AGENT_DAEMON_MIGRATION_SERVICE_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "sparetime/base/mutex.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/migration/cache.h"
#include "sparetime/migration/credentials.h"
#include "sparetime/peer/peer_server.h"

namespace sparetime::daemon {

class MigrationService final : public peer::MigrationHandler {
 public:
  // `self`: this agent's name (for messages). `allowed(source)`: OK or the
  // policy's refusal. `privileged(what)`: OK when the policy lets migrated
  // processes run as root or with capabilities, else the refusal (starting
  // with `what`). `log`: one line per event.
  MigrationService(std::string state_dir, std::string self, std::function<Status(const std::string&)> allowed,
                   std::function<Status(const std::string&)> privileged, std::function<void(const std::string&)> log,
                   migration::CacheLimits limits = {});
  ~MigrationService() override;  // stops the reaper (restored processes run on)

  Result<std::vector<bool>> Has(const std::string& source, std::span<const ChunkId> ids) override;
  Result<std::vector<Status>> Put(const std::string& source,
                                  const std::vector<transport::PutChunksRequest::Item>& chunks) override;
  Result<transport::MigrateRestoreReply> Restore(const std::string& source,
                                                 const transport::MigrateRestoreRequest& request) override;
  Status Check(const std::string& source, const transport::MigrateCheckRequest& request) override;

 private:
  Result<std::shared_ptr<PackStore>> Cache(const std::string& source);
  // Who may run what: the credentials mapped to this host's ids, or why not.
  Result<migration::Credentials> Place(const std::string& what, const migration::Credentials& creds,
                                       const migration::CredentialNames& names, bool privileged);
  void Reap(std::stop_token stop) EXCLUDES(mu_);

  const std::string self_;
  std::function<Status(const std::string&)> allowed_;
  std::function<Status(const std::string&)> privileged_;
  std::function<void(const std::string&)> log_;
  migration::MigrationCache caches_;
  // Non-empty when /proc is not this PID namespace's: every request is refused.
  const std::string proc_mismatch_;
  Mutex mu_;
  std::map<pid_t, std::string> restored_ GUARDED_BY(mu_);  // pid -> "comm from source"
  std::jthread reaper_;
};

}  // namespace sparetime::daemon

#endif  // SPARETIME_AGENT_DAEMON_MIGRATION_SERVICE_H_
