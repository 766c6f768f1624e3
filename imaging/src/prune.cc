// Prune: retention, the referenced set (kept manifests + journals), forget,
// publish, remove (see prune.h for the order and why).
//
// Invariants: nothing is forgotten or removed until every kept snapshot's
// manifest was read; a chunk is removed only when no kept snapshot (data or
// manifest chunk) and no journal names it; holes are never stored, so never
// listed or removed; snapshots of ambiguous legacy device keys are kept
// (retention.h) and counted in a warning note; a damaged record (the store's
// note that verify found a chunk damaged) is dropped once no kept snapshot
// or journal names the chunk.
#include "sparetime/imaging/prune.h"

#include <unordered_set>

#include "sparetime/imaging/manifest.h"

namespace sparetime {
namespace {

using IdSet = std::unordered_set<ChunkId, ChunkIdHash>;

constexpr size_t kRemoveBatch = 4096;  // ids per RemoveStored call

Status CheckCancel(const PruneOptions& options) {
  if (options.cancel != nullptr && options.cancel->load()) {
    return Cancelled("prune interrupted; nothing more was changed (run it again to finish)");
  }
  return Status::Ok();
}

// Adds every chunk of snapshot `s` (manifest chunks and data chunks) to `ids`.
Status AddReferenced(const Snapshot& s, const PruneEnv& env, IdSet& ids) {
  auto fail = [&](const Status& st) {
    return st.WithContext("prune: the manifest of kept snapshot " + s.id +
                          " cannot be read, so what it references is unknown; nothing was "
                          "changed (run `sparetime verify " + s.id +
                          "`, repair or forget it, then prune again)");
  };
  Result<std::vector<ChunkId>> own = ManifestChunkIds(s.manifest_root, env.codec, env.source);
  if (!own.ok()) return fail(own.status());
  ids.insert(own->begin(), own->end());
  Result<Manifest> manifest = LoadManifest(s.manifest_root, env.codec, env.source);
  if (!manifest.ok()) return fail(manifest.status());
  for (const ChunkId& id : manifest->chunks) {
    if (!id.is_hole()) ids.insert(id);
  }
  return Status::Ok();
}

}  // namespace

Result<PruneReport> Prune(const PruneEnv& env, const RetentionPolicy& policy,
                          const PruneOptions& options) {
  PruneReport report;
  report.dry_run = options.dry_run;
  ST_ASSIGN_OR_RETURN(std::vector<Snapshot> snapshots, env.catalog.ListSnapshots());
  report.decisions = ApplyRetention(snapshots, policy, options.utc_offset);

  uint64_t ambiguous = 0;
  for (const RetentionDecision& d : report.decisions) ambiguous += d.snapshot.device.legacy_ambiguous;
  if (ambiguous > 0) {
    report.notes.push_back(
        "warning: " + std::to_string(ambiguous) +
        " snapshot(s) carry an old device key (catalog schema 1) shared by snapshots that may be "
        "of different devices; all of them were kept. `sparetime forget` those you no longer need "
        "(docs/storage.md, \"Device keys and the schema 1 -> 2 migration\")");
  }

  IdSet referenced;
  for (const RetentionDecision& d : report.decisions) {
    if (d.keep) {
      ST_RETURN_IF_ERROR(CheckCancel(options));
      ST_RETURN_IF_ERROR(AddReferenced(d.snapshot, env, referenced));
    } else {
      ++report.snapshots_forgotten;
    }
  }
  report.chunks_referenced = referenced.size();
  ST_ASSIGN_OR_RETURN(std::vector<ChunkId> journal, env.catalog.JournalChunkIds());
  for (const ChunkId& id : journal) {
    if (referenced.insert(id).second) ++report.chunks_in_journals;
  }
  ST_RETURN_IF_ERROR(CheckCancel(options));

  if (!options.dry_run && report.snapshots_forgotten > 0) {
    for (const RetentionDecision& d : report.decisions) {
      if (!d.keep) ST_RETURN_IF_ERROR(env.catalog.ForgetSnapshot(d.snapshot.id));
    }
    if (env.publish) ST_RETURN_IF_ERROR(env.publish());
  }

  ST_ASSIGN_OR_RETURN(std::vector<StoredChunk> stored, env.remover.ListStored());
  report.chunks_stored = stored.size();
  std::vector<ChunkId> garbage;
  for (const StoredChunk& c : stored) {
    if (referenced.contains(c.id)) continue;
    garbage.push_back(c.id);
    report.bytes_removed += c.bytes;
  }
  report.chunks_removed = garbage.size();
  // Damaged records (verify) of chunks nothing references any more: there
  // is nothing left to heal, so they go too.
  ST_ASSIGN_OR_RETURN(std::vector<ChunkId> damaged, env.remover.ListDamagedRecords());
  std::vector<ChunkId> unused_damaged;
  for (const ChunkId& id : damaged) {
    if (!referenced.contains(id)) unused_damaged.push_back(id);
  }
  report.damaged_forgotten = unused_damaged.size();
  if (options.dry_run) return report;
  ST_RETURN_IF_ERROR(env.remover.DropDamagedRecords(unused_damaged));

  uint64_t freed = 0;
  for (size_t start = 0; start < garbage.size(); start += kRemoveBatch) {
    ST_RETURN_IF_ERROR(CheckCancel(options));
    const size_t n = std::min(kRemoveBatch, garbage.size() - start);
    ST_ASSIGN_OR_RETURN(uint64_t bytes,
                        env.remover.RemoveStored(std::span(garbage).subspan(start, n)));
    freed += bytes;
  }
  // A store that cannot size chunks when listing reports what it freed.
  if (report.bytes_removed == 0) report.bytes_removed = freed;
  return report;
}

}  // namespace sparetime
