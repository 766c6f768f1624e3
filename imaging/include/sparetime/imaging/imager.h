// Imager: backs up a BlockDevice into a ChunkSink and records a snapshot.
//
// Pipeline: two reader threads take the chunks in device order, so two large
// reads are in flight (O_DIRECT has no readahead), into a fixed pool of
// chunk buffers; worker threads (one per core) take each chunk through
//   zero check (hole) -> id -> dedup (sink.Contains) -> seal -> sink.Put.
// Memory is bounded by the pool (chunks_in_flight x chunk_size), whatever
// the device size. Every `checkpoint_bytes` of progress the imager flushes
// the sink and journals the finished chunks, so an interrupted backup
// (kill -9, disk full, cancel) resumes from there on the next run. The
// snapshot is recorded only after the manifest is stored and flushed.
// With `allocated` set, chunks holding no allocated byte of the filesystem
// are recorded as holes without a read (a partly allocated chunk is read
// whole and its free bytes zeroed); such runs keep their resume journal apart from raw runs.
// With `unchanged` set, the chunks it lists are taken from an earlier snapshot unread.
#ifndef SPARETIME_IMAGING_IMAGER_H_
#define SPARETIME_IMAGING_IMAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/device.h"

namespace sparetime {

// Progress of a long operation, reported from any thread, at most a few times
// per second.
struct ProgressInfo {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
};
using ProgressFn = std::function<void(const ProgressInfo&)>;

struct BackupOptions {
  uint32_t chunk_size = 0;        // 0: kDefaultChunkSize
  std::string label;
  unsigned threads = 0;           // 0: one per core
  unsigned chunks_in_flight = 0;  // 0: 2 x threads + 2
  uint64_t checkpoint_bytes = 256ull << 20;
  ProgressFn progress;
  const std::atomic<bool>* cancel = nullptr;  // set to stop early (kCancelled)
  // Asked before each device read (pause while the box is busy, rate limit).
  PauseGate* pause = nullptr;
  // The device's allocated ranges (fs_allocation.h), sorted and merged; a
  // chunk without an allocated byte is a hole: not read, hashed or stored;
  // in a partly allocated chunk (read whole) the free bytes are zeroed.
  // Null: every chunk is read (--all-blocks, or an unknown filesystem).
  const std::vector<ByteRange>* allocated = nullptr;
  // Chunks known unchanged since an earlier snapshot (chunk index, that
  // snapshot's id for it), e.g. from thin_delta: taken without a read when
  // the sink still holds the id, unless the chunk holds no allocated byte
  // now (then it is a hole). Null: none.
  const std::vector<std::pair<uint64_t, ChunkId>>* unchanged = nullptr;
};

struct BackupEnv {
  const Codec& codec;
  ChunkSink& sink;
  BackupJournal& journal;
  SnapshotRecorder& recorder;
};

Result<Snapshot> Backup(BlockDevice& device, const BackupEnv& env, const BackupOptions& options);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_IMAGER_H_
