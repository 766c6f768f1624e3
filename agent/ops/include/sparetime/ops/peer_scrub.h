// Scrub on peers (issue 21 part 2): the use case a peer runs at idle over
// what its PeerStore holds for other owners. Each run re-reads every blob
// held for every owner (PeerStore::Get: the stored BLAKE2b of the sealed
// blob is checked), owner by owner in name order and chunk by chunk in id
// order, and records what it found in a small state file.
//
// Invariants:
//  - Resumable: the state file keeps, per owner, the cursor (the last id
//    checked in the current pass). A run that is stopped (the box became
//    busy for good, SIGTERM, a crash) resumes after the cursor, never from
//    scratch; a pass that reached the end records last_complete and starts
//    the next pass from the first id. The cursor is saved at least every
//    kSaveEvery chunks and when the run ends, so a crash repeats at most
//    that many reads.
//  - Rate-limited like every idle job: each blob's bytes go through the
//    job's PauseGate (the controller's byte rate, from the policy's
//    sparetimeBandwidthLimit or [scheduler]), which also pauses the scrub
//    within a second of user activity.
//  - Damage is never served and never hidden: PeerStore::Get drops a copy
//    that fails its hash (so HasChunks says false from then on, and the
//    owner's next repair, which asks its holders, re-replicates it from a
//    good replica; a put of that id is stored anew). Keeping the damaged
//    bytes until a good replica exists elsewhere would not help anyone: a
//    blob that fails its hash fails the owner's AEAD too. The damage is
//    counted and the last kMaxDamageKept findings are kept (owner, id,
//    time, error) for `sparetime status`.
//  - The state file is written atomically (WriteFileAtomic); a damaged or
//    foreign file is reported and replaced by a fresh state (the worst
//    case is one pass that starts from the first id again).
#ifndef SPARETIME_OPS_PEER_SCRUB_H_
#define SPARETIME_OPS_PEER_SCRUB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/peerstore/peer_store.h"

namespace sparetime::ops {

struct ScrubDamage {
  std::string owner;
  std::string id_hex;
  int64_t at = 0;  // Unix seconds
  std::string error;
};

// Per owner, in <state_dir>/scrub.json.
struct OwnerScrubState {
  std::string cursor;         // hex id of the last chunk checked this pass; "" = from the start
  int64_t pass_started = 0;   // Unix s; 0 = no pass under way
  int64_t last_complete = 0;  // Unix s the last full pass ended; 0 = never
  uint64_t passes = 0;        // full passes so far
  uint64_t checked = 0;       // chunks checked, all passes
  uint64_t damaged = 0;       // damaged copies found (and dropped), all passes
};

struct ScrubState {
  std::map<std::string, OwnerScrubState> owners;
  std::vector<ScrubDamage> damage;  // newest last, at most kMaxDamageKept
};

inline constexpr size_t kMaxDamageKept = 32;
inline constexpr uint64_t kSaveEvery = 64;

std::string ScrubStatePath(const std::string& state_dir);
// A missing file is an empty state; a damaged one is kCorruption.
Result<ScrubState> LoadScrubState(const std::string& path);
Status SaveScrubState(const std::string& path, const ScrubState& state);

struct ScrubRequest {
  std::string state_path;  // ScrubStatePath(state_dir)
  PauseGate* gate = nullptr;  // may be null (no pause, no rate limit)
  std::function<int64_t()> now;  // Unix seconds
  // Called for each damaged copy found (the daemon logs it).
  std::function<void(const ScrubDamage&)> on_damage;
  // Bytes done / total of this run, for the job's progress.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct ScrubReport {
  uint64_t owners = 0;
  uint64_t checked = 0;
  uint64_t bytes = 0;
  uint64_t damaged = 0;
  uint64_t passes_completed = 0;  // owners whose pass reached the end in this run
  uint64_t resumed = 0;           // owners whose pass resumed after a cursor
  std::string ToString() const;
};

// One run: for each owner, from its cursor to the end of its chunks. A
// kCancelled from the gate saves the cursor and is returned as is (the
// scheduler retries the job at the next idle period, which resumes).
Result<ScrubReport> ScrubHeld(peerstore::PeerStore& store, const ScrubRequest& request);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_PEER_SCRUB_H_
