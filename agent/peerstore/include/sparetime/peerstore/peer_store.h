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
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/chunk_store.h"
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
  uint64_t record_bytes = 0;  // key + roots
  uint64_t used() const { return chunk_bytes + record_bytes; }
};

struct Roots {
  uint64_t generation = 0;
  std::vector<std::byte> data;
};

class PeerStore {
 public:
  // Opens (creating) <root>; scans existing owners for their usage.
  // `env` must outlive the store.
  static Result<std::unique_ptr<PeerStore>> Open(const std::string& root, PeerStoreLimits limits,
                                                 Env* env = Env::Default());
  ~PeerStore();

  // kInvalidArgument unless `owner` is 1..253 characters of [a-z0-9.-_]
  // (case-insensitive; stored lower-cased) not starting with '.' or '-'.
  static Status CheckOwnerName(const std::string& owner);

  // For each id, whether it is held for `owner`.
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
  // Forgets chunks (space is reclaimed by a later repack); unknown ids are
  // ignored. Returns how many were held.
  Result<uint64_t> Release(const std::string& owner, std::span<const ChunkId> ids);

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
  // walks it); empty when nothing is held. And the bytes the owner's pack
  // files take on disk (live chunks with their record headers, plus
  // released ones a repack has not reclaimed yet).
  Result<std::vector<StoredChunk>> ListChunks(const std::string& owner);
  Result<uint64_t> DiskBytes(const std::string& owner);

  Result<OwnerUsage> Usage(const std::string& owner);
  std::vector<std::string> Owners();
  uint64_t TotalUsed();
  const PeerStoreLimits& limits() const;

 private:
  class Impl;
  explicit PeerStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::peerstore

#endif  // SPARETIME_PEERSTORE_PEER_STORE_H_
