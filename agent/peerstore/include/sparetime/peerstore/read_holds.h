// ReadHolds: the read holds a peer keeps for the owners it stores chunks
// for (docs/peers.md "Read holds"). An agent that mounts another host's
// snapshot (`sparetime mount --host H`) holds it on every peer: "H's
// snapshot S is mounted by me until T". While any live hold of H exists,
// the peer defers H's ReleaseChunks (CheckRelease), so H's prune cannot free
// chunks under the mount; the prune keeps the chunks recorded and the next
// prune after the hold ends releases them.
//
// Why the whole owner and not the snapshot's chunks: a peer holds only
// sealed chunks and cannot read a manifest, so it cannot tell which chunks
// a snapshot uses. Deferring every release of H is the safe superset; it
// lasts only as long as a mount is renewing its hold.
//
// Invariants:
//   - A hold is (owner, holder, snapshot) → expiry (wall clock, Unix
//     seconds); one per triple. Expired holds count for nothing and are
//     dropped at the next change. Expiry is at most kMaxHoldSeconds ahead,
//     so a holder that vanishes blocks releases for at most that long.
//   - At most kMaxHoldsPerOwner live holds per owner (kNoSpace beyond).
//   - Every change is written (WriteFileAtomic through the Env) before Hold
//     returns, so holds survive a restart of the peer; the file is read
//     back strictly (a damaged file fails Open naming it and what to do).
//   - Names are agent names (PeerStore::CheckOwnerName rules, lower-cased);
//     snapshot names are 1..64 of [A-Za-z0-9._-]; so a line of the file is
//     "owner holder snapshot expiry" with no escaping.
//
// Thread safety: safe for concurrent use by many sessions.
#ifndef SPARETIME_PEERSTORE_READ_HOLDS_H_
#define SPARETIME_PEERSTORE_READ_HOLDS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/env.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"

namespace sparetime::peerstore {

struct ReadHold {
  std::string owner;
  std::string holder;
  std::string snapshot;
  int64_t expires = 0;  // Unix seconds
  bool operator==(const ReadHold&) const = default;
};

class ReadHolds {
 public:
  static constexpr uint32_t kMaxHoldSeconds = 3600;
  static constexpr size_t kMaxHoldsPerOwner = 64;

  // Opens (creating on first change) the holds file at `path`. `clock` and
  // `env` must outlive the object.
  static Result<std::unique_ptr<ReadHolds>> Open(const std::string& path, const Clock& clock,
                                                 Env* env = Env::Default());

  // `holder` holds `owner`'s `snapshot` for `seconds` from now (capped at
  // kMaxHoldSeconds); 0 drops the hold. Durable when it returns.
  Status Hold(const std::string& owner, const std::string& holder, const std::string& snapshot,
              uint32_t seconds) EXCLUDES(mu_);

  // OK when `owner` has no live hold; else kUnavailable "deferred: snapshot
  // S of OWNER is mounted by HOLDER until T UTC; ...", naming the hold that
  // lasts longest.
  Status CheckRelease(const std::string& owner) const EXCLUDES(mu_);

  // The live holds of `owner` (all owners when empty), sorted.
  std::vector<ReadHold> Live(const std::string& owner) const EXCLUDES(mu_);

 private:
  ReadHolds(std::string path, const Clock& clock, Env* env)
      : path_(std::move(path)), clock_(clock), env_(env) {}
  int64_t Now() const { return ToUnixSeconds(clock_.WallNow()); }
  Status Save() REQUIRES(mu_);

  const std::string path_;
  const Clock& clock_;
  Env* const env_;
  mutable Mutex mu_;
  std::vector<ReadHold> holds_ GUARDED_BY(mu_);  // sorted, unique per triple
};

}  // namespace sparetime::peerstore

#endif  // SPARETIME_PEERSTORE_READ_HOLDS_H_
