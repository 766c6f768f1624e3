// BackupTarget: where a command's backups live — a local repository
// (--repo DIR) or this agent's backups kept by its peers (--config FILE,
// replication/peer_repository.h). Both hand the imaging pipelines the same
// roles, so backup, snapshots, restore, verify and forget are written once.
#ifndef SPARETIME_AGENT_CLI_BACKUP_TARGET_H_
#define SPARETIME_AGENT_CLI_BACKUP_TARGET_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "commands.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/prune.h"
#include "sparetime/imaging/repository.h"

namespace sparetime::cli {

class BackupTarget {
 public:
  virtual ~BackupTarget() = default;
  virtual const RepositoryConfig& config() const = 0;
  virtual const Codec& codec() const = 0;
  virtual ChunkSink& sink() = 0;
  virtual ChunkSource& source() = 0;
  virtual Catalog& catalog() = 0;
  // The snapshot list changed (backup, forget): peers get the new roots.
  virtual Status Commit() { return Status::Ok(); }
  // Before reading these chunks: peers are asked where unrecorded ones are.
  virtual Status Prepare(std::span<const ChunkId>) { return Status::Ok(); }
  // What an operator should know at the end of a run (peers given up,
  // chunks with fewer replicas than the policy asks, damaged replicas).
  virtual std::vector<std::string> Warnings() const { return {}; }
  // `sparetime prune`: forget what `policy` drops and free the chunks
  // nothing references (Repository::Prune / PeerRepository::Prune).
  virtual Result<PruneReport> Prune(const RetentionPolicy& policy,
                                    const PruneOptions& options) = 0;
  // `sparetime repair`: only backups on peers can be repaired.
  virtual Result<std::string> Repair() {
    return FailedPrecondition("repair re-replicates chunks between peers: use --config, not --repo");
  }
};

// --repo wins; else the agent config (--config, $SPARETIME_CONFIG, or the
// default path) names the directory and the peers. `g.host` reads another
// agent's backups (peers only, read only). Prints the error and sets
// *exit_code on failure.
Result<std::unique_ptr<BackupTarget>> OpenTarget(const GlobalOptions& g, int* exit_code);

// Creates a new local repository or this agent's backups on its peers.
Status InitTarget(const GlobalOptions& g, const RepositoryConfig& config, KdfLimits limits,
                  int* exit_code);

// Prints the warnings on stderr (unless quiet).
void PrintWarnings(const GlobalOptions& g, const BackupTarget& target);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_BACKUP_TARGET_H_
