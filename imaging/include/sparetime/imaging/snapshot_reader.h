// SnapshotReader: random access to a snapshot's image — ReadAt(offset,
// length) over its manifest, the Codec and a ChunkSource — beside the
// streaming restorer (restorer.h). What `sparetime mount` serves.
//
// Invariants:
//   - Holes (kHoleId) read as zeroes and never reach the source.
//   - Every byte returned was opened by the Codec (AEAD + id check) — the
//     same FetchChunk rules as restore; a chunk that fails is an error for
//     reads touching it only (its message names the chunk's offset and id),
//     is reported once per failed fetch to `on_damage`, and is never cached,
//     so the rest of the image keeps reading.
//   - The cache holds at most `cache_bytes` of plaintext (ready chunks plus
//     fetches in flight); read-ahead never goes past that: it is cut to
//     cache_bytes / chunk_size - 2 chunks (0 disables it), so peak memory is
//     bounded by cache_bytes plus one chunk per reading thread.
//   - A chunk is fetched at most once at a time: a reader wanting a chunk a
//     read-ahead (or another reader) is fetching waits for that fetch.
//   - Read-ahead starts when a read begins where the previous one ended (a
//     sequential reader) and fetches the next `readahead_chunks` chunks on
//     `fetch_threads` threads in parallel — on peers, each Get may go to
//     another peer (PeerSet picks the replica).
//
// Thread safety: ReadAt and stats() may be called concurrently. The
// destructor drops queued read-ahead and waits for fetches in flight.
#ifndef SPARETIME_IMAGING_SNAPSHOT_READER_H_
#define SPARETIME_IMAGING_SNAPSHOT_READER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>

#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"
#include "sparetime/base/worker_pool.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/manifest.h"

namespace sparetime {

struct SnapshotReaderOptions {
  uint64_t cache_bytes = 64ull << 20;
  unsigned readahead_chunks = 16;
  unsigned fetch_threads = 8;
  // Called (from any thread) when a chunk fails to fetch or open: its image
  // offset, id and the error. May be empty.
  std::function<void(uint64_t offset, const ChunkId& id, const Status& error)> on_damage;
};

struct SnapshotReaderStats {
  uint64_t fetches = 0;      // chunks fetched and opened (demand + read-ahead)
  uint64_t readahead = 0;    // of which started by read-ahead
  uint64_t cache_hits = 0;   // chunk lookups answered from the cache (or a fetch in flight)
  uint64_t holes = 0;        // chunk lookups answered with zeroes
  uint64_t failures = 0;     // failed fetches
  uint64_t cached_bytes = 0; // plaintext held now (ready + in flight)
  uint64_t peak_cached_bytes = 0;
};

class SnapshotReader {
 public:
  SnapshotReader(Manifest manifest, const Codec& codec, ChunkSource& source,
                 SnapshotReaderOptions options);
  ~SnapshotReader();
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  uint64_t size() const { return manifest_.size; }
  const Manifest& manifest() const { return manifest_; }
  unsigned readahead_chunks() const { return readahead_; }

  // Fills `out` from `offset`; a read that reaches past the end is cut
  // there. Returns the bytes read (0 at or past the end).
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> out) EXCLUDES(mu_);

  SnapshotReaderStats stats() const EXCLUDES(mu_);

 private:
  struct Entry {
    bool ready = false;
    Status error;  // set with ready when the fetch failed
    std::vector<std::byte> data;
    std::list<uint64_t>::iterator lru;  // valid once ready and ok
  };
  using EntryPtr = std::shared_ptr<Entry>;

  // The plaintext of chunk `index` (never a hole), from the cache or fetched.
  Result<EntryPtr> Chunk(uint64_t index, bool* hit) EXCLUDES(mu_);
  // Fetches into `e` and publishes it (or its error).
  void Fetch(uint64_t index, const EntryPtr& e) EXCLUDES(mu_);
  void ScheduleReadahead(uint64_t from_index) EXCLUDES(mu_);
  void EvictLocked() REQUIRES(mu_);

  const Manifest manifest_;
  const Codec& codec_;
  ChunkSource& source_;
  const SnapshotReaderOptions options_;
  const unsigned readahead_;

  mutable Mutex mu_;
  std::condition_variable_any ready_cv_;
  std::unordered_map<uint64_t, EntryPtr> entries_ GUARDED_BY(mu_);
  std::list<uint64_t> lru_ GUARDED_BY(mu_);  // ready chunks, most recent first
  uint64_t next_sequential_ GUARDED_BY(mu_) = UINT64_MAX;
  bool stopping_ GUARDED_BY(mu_) = false;
  SnapshotReaderStats stats_ GUARDED_BY(mu_);
  // Last member: destroyed first, so no fetch outlives what it uses.
  std::unique_ptr<WorkerPool> pool_;
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_SNAPSHOT_READER_H_
