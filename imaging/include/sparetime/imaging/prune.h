// Prune: forget the snapshots retention drops, then remove the chunks no
// snapshot and no interrupted backup references any more.
//
// Order (each step only after the one before succeeded, so a failure or a
// crash at any point loses nothing that is still referenced):
//  1. decide (retention.h) and read every kept snapshot's manifest: its data
//     chunks and the manifest's own chunks (root and pieces) are referenced;
//     so is every chunk in the catalog's backups-in-progress journals (an
//     interrupted backup resumes from them). A manifest that cannot be read
//     stops the prune before anything changes.
//  2. forget the dropped snapshots in the catalog, then `publish` (peers get
//     the new snapshot list before any chunk goes).
//  3. list what the store holds and remove what is not referenced.
// A dry run does step 1 and the listing, and changes nothing.
//
// REQUIRES: nothing else adds chunks to or reads from the store meanwhile
// (callers hold the repository lock exclusively, repo_lock.h).
#ifndef SPARETIME_IMAGING_PRUNE_H_
#define SPARETIME_IMAGING_PRUNE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/retention.h"

namespace sparetime {

struct StoredChunk {
  ChunkId id;
  uint64_t bytes = 0;  // stored size, 0 when the store cannot tell
};

// The narrow store role prune needs (PackStore locally, PeerSet on peers).
class ChunkRemover {
 public:
  virtual ~ChunkRemover() = default;
  // Every chunk the store holds.
  virtual Result<std::vector<StoredChunk>> ListStored() = 0;
  // Removes `ids` (unknown ids are ignored). Returns the stored bytes this
  // freed as far as the store can tell.
  virtual Result<uint64_t> RemoveStored(std::span<const ChunkId> ids) = 0;
  // Chunks recorded as damaged (verify found them; no longer stored), for
  // a store that keeps such records (PackStore); none by default.
  virtual Result<std::vector<ChunkId>> ListDamagedRecords() { return std::vector<ChunkId>{}; }
  // Drops the damaged records of `ids` (prune: chunks no snapshot uses any
  // more, so nothing is left to heal).
  virtual Status DropDamagedRecords(std::span<const ChunkId>) { return Status::Ok(); }
};

struct PruneEnv {
  Catalog& catalog;
  const Codec& codec;
  ChunkSource& source;    // reads the manifests
  ChunkRemover& remover;
  // Called after snapshots were forgotten and before chunks are removed
  // (peers: publish the new snapshot list). May be empty.
  std::function<Status()> publish;
};

struct PruneOptions {
  bool dry_run = false;
  UtcOffsetFn utc_offset;  // empty: the system's local time
  const std::atomic<bool>* cancel = nullptr;  // checked between steps
  // How long a repository's Prune waits for its other users to let go of
  // the repository lock (repo_lock.h).
  std::chrono::milliseconds lock_wait{30'000};
};

struct PruneReport {
  bool dry_run = false;
  std::vector<RetentionDecision> decisions;  // newest first
  uint64_t snapshots_forgotten = 0;          // (would be) forgotten
  uint64_t chunks_stored = 0;                // held by the store before
  uint64_t chunks_referenced = 0;            // by kept snapshots (manifests included)
  uint64_t chunks_in_journals = 0;           // by interrupted backups
  uint64_t chunks_removed = 0;               // (would be) removed
  uint64_t bytes_removed = 0;                // stored bytes (would be) freed
  uint64_t damaged_forgotten = 0;            // damaged records of unused chunks (would be) dropped
  // What the store did besides (a repack, peers that missed a release).
  std::vector<std::string> notes;
  // Not OK when a last step stopped early (kNoSpace: the repack ran out of
  // room); everything the report counts still happened.
  Status stopped;
};

Result<PruneReport> Prune(const PruneEnv& env, const RetentionPolicy& policy,
                          const PruneOptions& options);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PRUNE_H_
