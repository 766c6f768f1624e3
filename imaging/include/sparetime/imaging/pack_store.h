// PackStore: a local ChunkSink + ChunkSource made of append-only pack files
// and an SQLite index.
//
// Layout under the store directory:
//   index.db            SQLite (WAL): chunks(id PRIMARY KEY, pack, offset,
//                       length, hash) and packs(pack, name, committed_size)
//   packs/NN/PPPPPPPP.pack
// Removed chunks leave dead records in their packs until Repack rewrites
// the packs that became mostly dead.
// A pack is a sequence of records: header (magic, length, id) + sealed blob;
// the record format is in docs/storage.md. `hash` is an unkeyed BLAKE2b-256
// of the stored blob, checked on every Get and by Scrub, so a damaged pack is
// reported as kCorruption naming the pack and offset.
//
// Durability: Put appends to this writer's open pack; Flush fsyncs the pack
// and then commits the index rows, so the index never points past durable
// bytes (tests/imaging/crash_pack_store_test.cc cuts the power at every
// sync point to hold it to that). Create syncs the new directories. On Open, bytes in a pack beyond its committed size are a torn tail:
// complete, valid records are re-indexed, the rest is cut off (truncated), and
// the repair is reported.
//
// Concurrency: safe for many threads in one process; several processes may
// open the same store at once — each writer appends only to packs it created
// and holds an exclusive flock on, and SQLite serialises the index.
#ifndef SPARETIME_IMAGING_PACK_STORE_H_
#define SPARETIME_IMAGING_PACK_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/prune.h"

namespace sparetime {

struct PackStoreOptions {
  uint64_t target_pack_bytes = 64ull << 20;  // start a new pack beyond this size
  uint32_t max_blob_bytes = 8u << 20;        // larger records are corrupt
  // Whether Get checks each blob against its stored hash. Off only for a
  // reader that opens every blob with the Codec, whose AEAD tag already
  // covers every byte (a repository's key holder). Scrub and repack always
  // check: they read without the key.
  bool hash_check_on_get = true;
  // Every file operation (packs and, through its SQLite VFS, index.db) goes
  // through this Env; tests pass a FaultEnv. Must outlive the store.
  Env* env = Env::Default();
};

struct PackStoreStats {
  uint64_t chunks = 0;
  uint64_t stored_bytes = 0;  // sum of sealed blob lengths
  uint64_t packs = 0;
};

// What Open() found and repaired.
struct PackRecovery {
  uint64_t packs_repaired = 0;
  uint64_t records_recovered = 0;  // valid records past the committed size, re-indexed
  uint64_t bytes_truncated = 0;    // torn bytes cut off
};

// A chunk verify found damaged (PackStore::MarkDamaged).
struct DamagedChunk {
  ChunkId id;
  std::string error;  // what was wrong with it
};

// What Repack() did.
struct RepackReport {
  uint64_t packs_deleted = 0;    // packs holding no live record, deleted whole (first)
  uint64_t packs_rewritten = 0;  // old packs deleted after their live records moved
  uint64_t packs_skipped = 0;    // left alone: a damaged record (Scrub names it)
  uint64_t chunks_moved = 0;
  uint64_t bytes_freed = 0;      // pack file bytes given back
  // Not OK (kNoSpace) when the disk filled up and the repack stopped early;
  // everything above still happened and is durable.
  Status stopped;
  // "repacked 3 packs (12 chunks moved), 40.0 MiB freed".
  std::string ToString() const;
};

class PackStore final : public ChunkSink, public ChunkSource, public ChunkRemover {
 public:
  // Creates an empty store at `dir` (which may exist but must be empty of a store).
  static Result<std::unique_ptr<PackStore>> Create(const std::string& dir,
                                                   PackStoreOptions options = {});
  // Opens an existing store, repairing torn tails. kNotFound when `dir` holds no store.
  static Result<std::unique_ptr<PackStore>> Open(const std::string& dir,
                                                 PackStoreOptions options = {});
  ~PackStore() override;

  Result<bool> Contains(const ChunkId& id) override;
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override;
  Status Flush() override;
  Result<std::vector<std::byte>> Get(const ChunkId& id) override;

  // Removes chunks from the index (space is reclaimed by a later repack).
  Status Remove(std::span<const ChunkId> ids);

  // ChunkRemover (prune.h): every indexed chunk with its sealed length, and
  // Remove returning the sealed bytes it dropped from the index.
  Result<std::vector<StoredChunk>> ListStored() override;
  Result<uint64_t> RemoveStored(std::span<const ChunkId> ids) override;
  Result<std::vector<ChunkId>> ListDamagedRecords() override;
  Status DropDamagedRecords(std::span<const ChunkId> ids) override;

  // Deletes the packs no live record is in, then rewrites packs whose live
  // records fill less than `live_fraction` of them into new packs and
  // deletes the old files, so removed chunks give their space back. A full
  // disk stops the rewriting cleanly (report.stopped, what was freed kept). Crash-safe at every step (pack_repack.h). Packs other
  // writers are appending to are skipped. REQUIRES: no other process or
  // thread reads or writes the store meanwhile (prune holds the repository
  // lock exclusively).
  Result<RepackReport> Repack(double live_fraction = 0.5);

  PackStoreStats Stats();
  const PackRecovery& recovery() const;

  // Self-healing (docs/storage.md): records chunks found damaged. Their
  // index rows go, so Contains() is false and the next Put of the same id
  // (a backup that meets the content again, or repair) stores it anew and
  // clears the record; Get() of a recorded chunk is kCorruption saying so;
  // a repack treats its record as dead.
  Status MarkDamaged(std::span<const DamagedChunk> chunks);
  // The chunks recorded damaged and not stored again since.
  Result<std::vector<DamagedChunk>> Damaged();
  // SQLite quick_check (full: integrity_check) of index.db.
  Status CheckIntegrity(bool full);

  // Reads every stored blob and checks its hash; calls `bad` for each
  // damaged one. Returns the number of chunks checked.
  Result<uint64_t> Scrub(const std::function<void(const ChunkId&, const Status&)>& bad);

  class Impl;

 private:
  explicit PackStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PACK_STORE_H_
