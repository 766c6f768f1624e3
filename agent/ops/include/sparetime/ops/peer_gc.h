// ops::CollectHeld: the peer side of the lifecycle (issue 21, docs/peers.md
// "Lifecycle"): what this agent holds for others gives space back. For
// every owner held here: notes who is still in the directory (departed
// owners are marked, those back are unmarked), then PeerStore::Collect —
// releases older than the grace leave the index, roots generations older
// than the grace are deleted, the owner's packs are repacked with
// imaging's Repack, a departed owner past its own grace is deleted whole.
// An owner with a live read hold (a mount of its snapshot elsewhere) is
// skipped this time: nothing of it moves while it is held. sparetimed runs
// this as the idle-time job "peer-gc"; `sparetime peers --orphans/--purge`
// use ListOrphans/PurgeOrphan.
//
// Invariants: directory names are only trusted from a successful read
// (`present` absent: nobody is marked or unmarked departed); one owner's
// failure is reported and the others still run; the gate is asked between
// owners, so user activity pauses the job within one owner's repack.
//
// Thread safety: the PeerStore and ReadHolds are thread safe; call from
// one job thread at a time.
#ifndef SPARETIME_OPS_PEER_GC_H_
#define SPARETIME_OPS_PEER_GC_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/client.h"
#include "sparetime/directory/policy.h"
#include "sparetime/directory/records.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/peerstore/read_holds.h"

namespace sparetime::ops {

struct HeldGcSettings {
  int64_t grace_seconds = 7 * 86400;
  int64_t departed_grace_seconds = 30 * 86400;
  double live_fraction = 0.5;  // packs less live than this are rewritten
};
// The grace periods from the effective policy (sparetimePeerGraceDays,
// sparetimeDepartedGraceDays).
HeldGcSettings HeldGcFromPolicy(const directory::EffectivePolicy& policy);
// The agent names of a directory read.
std::set<std::string> AgentNames(const directory::DirectoryView& view);

struct HeldGcOwner {
  std::string owner;
  peerstore::CollectReport report;
  std::string skipped;  // why it was left alone ("" when collected)
  Status error;
};
struct HeldGcReport {
  std::vector<HeldGcOwner> owners;
  uint64_t disk_before = 0, disk_after = 0;
  // "3 owners: 12 released chunks (1.2 MiB) dropped, 2 packs rewritten,
  // disk 40.0 MiB -> 38.8 MiB; alpha skipped (deferred: ...)".
  std::string ToString() const;
};

// `sparetime peers --orphans`: the owners this agent holds data for whose
// directory entry is gone, with their bytes and since when (opens
// <state_dir>/held beside a running sparetimed: pack stores are safe to
// open from several processes). `directory` marks owners from a fresh read.
Result<std::vector<peerstore::Orphan>> ListOrphans(const config::AgentConfig& config,
                                                   const directory::DirectoryState& directory);
// `sparetime peers --purge HOST`: deletes what is held for HOST now —
// refused unless `directory` is a fresh read (not the cache) without HOST,
// and something is held for it. sparetimed forgets it (frees the quota) at
// its next directory read.
Status PurgeOrphan(const config::AgentConfig& config, const directory::DirectoryState& directory,
                   const std::string& host);

Result<HeldGcReport> CollectHeld(peerstore::PeerStore& store, peerstore::ReadHolds* holds,
                                 const std::optional<std::set<std::string>>& present,
                                 const HeldGcSettings& settings, PauseGate& gate);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_PEER_GC_H_
