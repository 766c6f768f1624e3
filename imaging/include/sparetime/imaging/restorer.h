// Restorer and verifier: read a snapshot's chunks back from a ChunkSource.
//
// Restore checks the target is at least the image size and reserves the room
// of the image's data runs (RestoreTarget::Reserve), then worker threads
// fetch chunks in parallel, open each (AEAD + id check, see codec.h) into
// their own page-aligned buffer and write it at its offset; holes go to
// RestoreTarget::Hole. Any chunk that fails is an error naming its offset
// and id; nothing is written for it — unless `keep_going`: then a chunk the
// source cannot give or that fails its checks (kCorruption, kNotFound,
// kAuthFailed: a damaged chunk) is written as zeroes and listed in
// RestoreStats::damaged, and the restore goes on; target write errors and
// cancellation still stop it.
// Verify does the same reads and checks without a target and reports every
// bad chunk rather than stopping at the first.
#ifndef SPARETIME_IMAGING_RESTORER_H_
#define SPARETIME_IMAGING_RESTORER_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "sparetime/base/mutex.h"
#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/manifest.h"

namespace sparetime {

struct RestoreOptions {
  unsigned threads = 0;  // 0: max(4, 2 x cores) (fetches may wait on peers)
  ProgressFn progress;
  const std::atomic<bool>* cancel = nullptr;
  // Asked before each chunk fetch with the chunk's size (a scheduled verify
  // pauses while the box is busy; kCancelled stops the run).
  PauseGate* pause = nullptr;
  // Restore only: write zeroes for damaged chunks and go on (see above).
  bool keep_going = false;
};

// A range of the image a keep-going restore left as zeroes.
struct DamagedRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  ChunkId id;
  Status error;
};

// True for the errors that mean "this chunk is damaged or gone" (what
// keep_going skips and verify records), not "the run could not go on".
bool IsDamagedChunkError(const Status& s);

struct RestoreStats {
  uint64_t chunks_written = 0;
  uint64_t holes = 0;
  uint64_t bytes_written = 0;
  std::vector<DamagedRange> damaged;  // keep_going: in offset order
};

Result<RestoreStats> Restore(const Manifest& manifest, const Codec& codec, ChunkSource& source,
                             RestoreTarget& target, const RestoreOptions& options);

struct BadChunk {
  uint64_t offset;  // byte offset in the image of the first use of this chunk
  ChunkId id;
  Status error;
};

struct VerifyReport {
  uint64_t chunks_checked = 0;  // distinct ids read and opened
  uint64_t chunks_known = 0;    // distinct ids whose verdict came from the cache
  std::vector<BadChunk> bad;
  bool ok() const { return bad.empty(); }
};

// Verdicts of chunks already checked, shared by the Verify calls of one run
// so that a chunk common to many snapshots is read once; a bad chunk is still
// reported in every snapshot that uses it. Thread-safe.
class VerifyCache {
 public:
  // The verdict for `id` (OK or the error found), if it was checked.
  std::optional<Status> Find(const ChunkId& id) const EXCLUDES(mu_);
  void Record(const ChunkId& id, const Status& verdict) EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  std::unordered_map<ChunkId, Status, ChunkIdHash> verdicts_ GUARDED_BY(mu_);
};

// Reads and opens every distinct chunk of `manifest` (skipping those `cache`
// already holds a verdict for, when given).
Result<VerifyReport> Verify(const Manifest& manifest, const Codec& codec, ChunkSource& source,
                            const RestoreOptions& options, VerifyCache* cache = nullptr);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_RESTORER_H_
