// ReleaseLog: the releases a peer has accepted for one owner but not yet
// carried out (delayed delete, docs/peers.md "Lifecycle"). A released chunk
// stays in the owner's pack store, readable, until its grace period has
// passed; then PeerStore::Collect removes it and repacks.
//
// File held/<owner>/released: fixed 41-byte records, appended and synced:
//   1 byte kind ('R' released, 'K' kept again: the owner stored it anew)
//   8 bytes little-endian Unix seconds (when released; 0 for 'K')
//   32 bytes chunk id
// Replay: 'R' marks the id released at that time (the earliest release
// counts), 'K' clears it. A tail shorter than a record, or a record of an
// unknown kind (a torn append), ends the log: it is cut there at Load.
// Collect rewrites the file atomically with only the releases still
// pending, so it stays bounded by the owner's chunk count.
//
// Invariants: an acknowledged release is durable (Append syncs before it
// returns, and the file's creation is synced into the owner's directory);
// a crash between Collect's removal from the pack index and its rewrite
// leaves 'R' records of ids no longer held, which are harmless (removing an
// unknown id is a no-op) and dropped at the next rewrite.
//
// Thread safety: none; PeerStore serialises access per owner.
#ifndef SPARETIME_PEERSTORE_RELEASE_LOG_H_
#define SPARETIME_PEERSTORE_RELEASE_LOG_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"

namespace sparetime::peerstore {

// id -> Unix seconds of its release.
using PendingReleases = std::map<ChunkId, int64_t>;

class ReleaseLog {
 public:
  static constexpr size_t kRecordBytes = 41;
  enum Kind : char { kReleased = 'R', kKept = 'K' };
  struct Record {
    Kind kind;
    int64_t when;
    ChunkId id;
  };

  // Reads `path` (absent: nothing pending), cutting a torn tail.
  static Result<PendingReleases> Load(Env& env, const std::string& path);
  // Appends and syncs `records` (nothing when empty).
  static Status Append(Env& env, const std::string& path, const std::vector<Record>& records);
  // Replaces the file with exactly `pending` (removes it when empty).
  static Status Rewrite(Env& env, const std::string& path, const PendingReleases& pending);
};

}  // namespace sparetime::peerstore

#endif  // SPARETIME_PEERSTORE_RELEASE_LOG_H_
