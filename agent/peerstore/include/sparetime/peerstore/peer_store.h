// PeerStore: what an agent keeps for other agents (its peers, the "owners"):
// their sealed chunks, their wrapped master key and their manifest roots,
// under <state_dir>/held/<owner>/, with a quota per owner and a total
// capacity for all of them.
//
// Layout per owner (owner = the peer's agent name, lower-cased; DNS label
// characters only):
//   held/<owner>/chunks/      a PackStore (packs + SQLite index)
//   held/<owner>/key          the owner's wrapped master key (opaque)
//   held/<owner>/roots        the owner's manifest roots: 8-byte LE
//                             generation + an opaque blob sealed by the owner
//
// Invariants: the store never sees plaintext or keys — chunks and records are
// sealed by their owner; every chunk's stored-ciphertext hash (HashBlob) is
// checked on receive against the sender's, on every Get (PackStore) and by
// Scrub, and a copy that fails the check is dropped (the owner sends a good
// one again). Roots only move forward: a put with a generation not above the
// held one is refused, so a replayed or stale writer cannot roll them back. A put that would exceed the owner's quota or the total capacity is
// refused with kNoSpace naming both numbers, before anything is written.
// Who may call what (only the owner mutates) is decided by the caller, which
// knows the authenticated session; this class only stores.
//
// Lifecycle (issue 21, docs/peers.md "Lifecycle"): Release only marks
// chunks released (held/<owner>/released, release_log.h); they stay on
// disk — Get serves them, usage counts them, Has says no (the owner let
// them go; a Put of one keeps it again) — until Collect finds their
// grace period over, removes them from the index and repacks the owner's
// packs with imaging's Repack (the same code as the local prune), so the
// disk follows the owners' live data. A Put of a released chunk keeps it
// again (after re-checking the held copy's hash). Every roots generation
// replaced is kept in held/<owner>/history/<generation> (8-byte LE Unix
// seconds of its replacement + the old file) until its grace is over too.
// An owner gone from the directory is marked held/<owner>/departed (Unix
// seconds first seen gone; cleared when it is back); Collect deletes a
// departed owner whole after its own grace, Purge earlier on request. Drop
// removes chunks at once: only for copies known damaged.
// Exclusivity: Collect and Purge hold the owner exclusively (a per-owner
// reader/writer gate every other call takes shared), so no put, get or
// release of that owner runs while its packs are rewritten or deleted.
// Time comes from the Clock given to Open (a seam for tests).
//
// Durability: every file operation (the owners' PackStores with their
// index.db, the key and roots files, the directories) goes through the Env
// given to Open; a new owner directory is synced into held/ before anything
// is stored in it. tests/peerstore/crash_peer_store_test.cc cuts the power
// at every sync point.
//
// Thread safety: safe for concurrent use by many sessions.
#ifndef SPARETIME_PEERSTORE_PEER_STORE_H_
#define SPARETIME_PEERSTORE_PEER_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/env.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/imaging/prune.h"

namespace sparetime::peerstore {

struct PeerStoreLimits {
  uint64_t capacity = 0;     // total bytes for all owners
  uint64_t owner_quota = 0;  // bytes for any one owner (0: capacity)
  static constexpr size_t kMaxRootsBytes = 1 << 20;
  static constexpr size_t kMaxKeyBytes = 4096;
};

struct OwnerUsage {
  std::string owner;
  uint64_t chunks = 0;
  uint64_t chunk_bytes = 0;   // sealed bytes of live chunks
  uint64_t record_bytes = 0;  // key + roots (+ kept roots generations)
  uint64_t released_chunks = 0;  // released, kept until their grace is over (counted above)
  uint64_t released_bytes = 0;
  uint64_t used() const { return chunk_bytes + record_bytes; }
};

struct Roots {
  uint64_t generation = 0;
  std::vector<std::byte> data;
};

// A roots generation held for an owner (RootsHistory).
struct RootsGeneration {
  uint64_t generation = 0;
  int64_t replaced_at = 0;  // Unix seconds; 0 for the current one
  uint64_t bytes = 0;       // of the sealed roots
};

// What Collect did for one owner.
struct CollectReport {
  uint64_t chunks_dropped = 0;       // released chunks whose grace was over
  uint64_t bytes_dropped = 0;        // their sealed bytes
  uint64_t chunks_still_released = 0;  // released, grace not over yet
  uint64_t generations_dropped = 0;  // old roots generations past their grace
  RepackReport repack;
  bool purged = false;  // a departed owner past its grace, deleted whole
  uint64_t disk_before = 0, disk_after = 0;  // bytes of files under held/<owner>
};

// An owner whose directory entry is gone (Orphans).
struct Orphan {
  std::string owner;
  uint64_t bytes = 0;   // its usage
  int64_t since = 0;    // Unix seconds it was first seen gone
};

class PeerStore {
 public:
  // Opens (creating) <root>; scans existing owners for their usage.
  // `env` must outlive the store.
  static Result<std::unique_ptr<PeerStore>> Open(const std::string& root, PeerStoreLimits limits,
                                                 Env* env = Env::Default(),
                                                 const Clock& clock = SystemClock());
  ~PeerStore();

  // kInvalidArgument unless `owner` is 1..253 characters of [a-z0-9.-_]
  // (case-insensitive; stored lower-cased) not starting with '.' or '-'.
  static Status CheckOwnerName(const std::string& owner);

  // For each id, whether it is held for `owner` (released ones: no).
  Result<std::vector<bool>> Has(const std::string& owner, std::span<const ChunkId> ids);
  // Stores a sealed chunk after checking HashBlob(sealed) == expected_hash
  // (kCorruption otherwise). Returns true when it was already held. Durable
  // after Flush(owner).
  Result<bool> Put(const std::string& owner, const ChunkId& id, std::span<const std::byte> sealed,
                   const BlobHash& expected_hash);
  Status Flush(const std::string& owner);
  // kCorruption for a copy that fails its hash check; that copy is dropped
  // (Has says false from then on), so the owner can send a good one.
  Result<std::vector<std::byte>> Get(const std::string& owner, const ChunkId& id);
  // Marks chunks released now: they stay held and readable until Collect
  // runs after their grace period (docs/peers.md "Lifecycle"); unknown ids
  // are ignored. Durable when it returns. Returns how many were held.
  Result<uint64_t> Release(const std::string& owner, std::span<const ChunkId> ids);
  // Removes chunks from the index at once (a copy known damaged); the space
  // comes back at the next Collect's repack. Returns how many were held.
  Result<uint64_t> Drop(const std::string& owner, std::span<const ChunkId> ids);

  Status PutKey(const std::string& owner, std::span<const std::byte> wrapped_key);
  // kNotFound when no key is held for `owner`.
  Result<std::vector<std::byte>> GetKey(const std::string& owner);

  // kFailedPrecondition when `generation` is not above the held one.
  Status PutRoots(const std::string& owner, uint64_t generation, std::span<const std::byte> data);
  // kNotFound when no roots are held for `owner`.
  Result<Roots> GetRoots(const std::string& owner);

  // Re-reads every chunk held for `owner` and checks its hash; `bad` is
  // called for each damaged one, which is then dropped. Returns the number
  // checked.
  Result<uint64_t> Scrub(const std::string& owner,
                         const std::function<void(const ChunkId&, const Status&)>& bad);

  // Scrub on peers (issue 21 part 2, ops/peer_scrub.h): every chunk held
  // for `owner` with its sealed length, in id order (the scrub's cursor
  // walks it); empty when nothing is held. (The bytes on disk: DiskBytes.)
  Result<std::vector<StoredChunk>> ListChunks(const std::string& owner);

  Result<OwnerUsage> Usage(const std::string& owner);
  std::vector<std::string> Owners();
  uint64_t TotalUsed();
  const PeerStoreLimits& limits() const;

  // --- Lifecycle (issue 21): delayed delete, repack, departed owners -------
  // For `owner`, exclusively: removes the chunks released at least
  // `grace_seconds` ago, deletes roots generations replaced that long ago,
  // repacks its packs (imaging's Repack: packs below `live_fraction` live
  // are rewritten, dead ones deleted) and recounts its usage from the store.
  // A departed owner (NoteDirectory) gone for `departed_grace_seconds` is
  // purged instead. A crash at any point loses nothing kept; the next
  // Collect finishes the work.
  Result<CollectReport> Collect(const std::string& owner, int64_t grace_seconds,
                                double live_fraction, int64_t departed_grace_seconds);
  // The held roots generations of `owner`, newest (the current one) first.
  Result<std::vector<RootsGeneration>> RootsHistory(const std::string& owner);
  // One of them (kNotFound when it is not held, naming what is).
  Result<Roots> GetRootsGeneration(const std::string& owner, uint64_t generation);
  // `present`: the agent names of a successful directory read. Marks every
  // held owner not among them departed (from now, unless marked already)
  // and clears the mark of those that are. An owner whose directory another
  // process deleted (`sparetime peers --purge`) is forgotten, its quota freed.
  Status NoteDirectory(const std::set<std::string>& present);
  // The owners marked departed, by name.
  std::vector<Orphan> Orphans();
  // Deletes everything held for `owner` now and frees its quota. Refused
  // (kFailedPrecondition) unless it is marked departed and not in `present`.
  Status Purge(const std::string& owner, const std::set<std::string>& present);
  // Bytes of the files under held/<owner> (what the disk really holds:
  // packs with live and released-pending chunks, index, key, roots, history).
  uint64_t DiskBytes(const std::string& owner);

 private:
  class Impl;
  explicit PeerStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::peerstore

#endif  // SPARETIME_PEERSTORE_PEER_STORE_H_
