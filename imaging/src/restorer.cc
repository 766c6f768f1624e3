// Restorer and verifier (see restorer.h). Workers claim chunk indices from a
// shared counter, so fetches from slow sources overlap; every chunk is opened
// through the Codec (AEAD + id check) before a byte of it is written.
#include "sparetime/imaging/restorer.h"

#include <algorithm>
#include <cstring>
#include <atomic>
#include <thread>
#include <unordered_map>
#include <vector>

#include "progress_reporter.h"
#include "work_queue.h"

namespace sparetime {
namespace {

unsigned WorkerCount(const RestoreOptions& options) {
  if (options.threads) return options.threads;
  return std::max(4u, 2 * std::thread::hardware_concurrency());
}

bool Cancelled(const RestoreOptions& options) { return options.cancel && options.cancel->load(); }

// Runs `fn(i, buffer)` for i in [0, n) on the worker pool until it fails or
// is cancelled; each worker owns one page-aligned buffer of `chunk_size`
// bytes, and each i first passes the pause gate with `chunk_size` (when set).
void ParallelFor(uint64_t n, const RestoreOptions& options, FirstError& errors, size_t chunk_size,
                 const std::function<Status(uint64_t, std::span<std::byte>)>& fn) {
  std::atomic<uint64_t> next{0};
  auto loop = [&] {
    AlignedBuffer buffer(chunk_size);
    for (uint64_t i; (i = next.fetch_add(1)) < n;) {
      if (errors.failed()) return;
      if (Cancelled(options)) {
        errors.Set(sparetime::Cancelled("stopped on request"));
        return;
      }
      if (options.pause) {
        if (Status s = options.pause->WaitWhilePaused(chunk_size); !s.ok()) {
          errors.Set(s);
          return;
        }
      }
      errors.Set(fn(i, buffer.span()));
    }
  };
  std::vector<std::jthread> workers;
  unsigned threads = static_cast<unsigned>(std::min<uint64_t>(WorkerCount(options), n));
  for (unsigned t = 1; t < threads; ++t) workers.emplace_back(loop);
  loop();
}

std::string ChunkWhere(uint64_t offset, const ChunkId& id) {
  return "chunk at offset " + std::to_string(offset) + " (id " + id.short_hex() + ")";
}

// Fetches and opens chunk `index` into `buffer`; returns the plaintext (the
// front of `buffer`). The error is the source's or the codec's, without
// where (ChunkWhere adds it).
Result<std::span<const std::byte>> OpenChunk(const Manifest& manifest, const Codec& codec,
                                             ChunkSource& source, uint64_t index,
                                             std::span<std::byte> buffer) {
  const ChunkId& id = manifest.chunks[index];
  uint64_t length = manifest.ChunkLength(index);
  ST_ASSIGN_OR_RETURN(std::vector<std::byte> sealed, source.Get(id));
  ST_ASSIGN_OR_RETURN(size_t size, codec.OpenInto(BlobKind::kData, id, sealed,
                                                  buffer.first(length)));
  if (size != length) {
    return Corruption("holds " + std::to_string(size) + " bytes, the image needs " +
                      std::to_string(length));
  }
  return std::span<const std::byte>(buffer.first(length));
}

// OpenChunk, with the error naming the chunk's offset and id.
Result<std::span<const std::byte>> FetchChunk(const Manifest& manifest, const Codec& codec,
                                              ChunkSource& source, uint64_t index,
                                              std::span<std::byte> buffer) {
  Result<std::span<const std::byte>> plain = OpenChunk(manifest, codec, source, index, buffer);
  if (!plain.ok()) {
    return plain.status().WithContext(
        ChunkWhere(index * manifest.chunk_size, manifest.chunks[index]));
  }
  return plain;
}

// Reserves the target's room for every run of data chunks before any write:
// a full filesystem fails here, and writes into reserved blocks never do.
Status ReserveDataRuns(const Manifest& manifest, RestoreTarget& target) {
  std::vector<ByteRange> runs;
  uint64_t total = 0;
  const uint64_t n = manifest.chunk_count();
  for (uint64_t i = 0; i < n; ++i) {
    if (manifest.chunks[i].is_hole()) continue;
    uint64_t offset = i * manifest.chunk_size;
    uint64_t length = manifest.ChunkLength(i);
    if (!runs.empty() && runs.back().offset + runs.back().length == offset) {
      runs.back().length += length;
    } else {
      runs.push_back({offset, length});
    }
    total += length;
  }
  Status st = target.Reserve(runs);
  if (!st.ok())
    return st.WithContext("the image holds " + std::to_string(total) + " bytes of data");
  return st;
}

}  // namespace

Result<RestoreStats> Restore(const Manifest& manifest, const Codec& codec, ChunkSource& source,
                             RestoreTarget& target, const RestoreOptions& options) {
  if (target.size() < manifest.size) {
    return FailedPrecondition("the target holds " + std::to_string(target.size()) +
                              " bytes but the image needs " + std::to_string(manifest.size));
  }
  ST_RETURN_IF_ERROR(ReserveDataRuns(manifest, target));
  RestoreStats stats;
  Mutex mu;  // guards stats
  FirstError errors;
  ProgressReporter progress(options.progress, manifest.size);
  auto restore_chunk = [&](uint64_t i, std::span<std::byte> buffer) -> Status {
    uint64_t offset = i * manifest.chunk_size;
    uint64_t length = manifest.ChunkLength(i);
    if (manifest.chunks[i].is_hole()) {
      ST_RETURN_IF_ERROR(target.Hole(offset, length));
      MutexLock lock(mu);
      ++stats.holes;
    } else {
      Result<std::span<const std::byte>> plain = FetchChunk(manifest, codec, source, i, buffer);
      if (!plain.ok() && options.keep_going && IsDamagedChunkError(plain.status())) {
        // Zeroes where the chunk was: nothing of another chunk, nor of what
        // the target held before, is left in a damaged range.
        std::memset(buffer.data(), 0, length);
        ST_RETURN_IF_ERROR(target.WriteAt(offset, buffer.first(length)));
        MutexLock lock(mu);
        stats.damaged.push_back({offset, length, manifest.chunks[i], plain.status()});
      } else {
        ST_RETURN_IF_ERROR(plain.status());
        ST_RETURN_IF_ERROR(target.WriteAt(offset, *plain));
        MutexLock lock(mu);
        ++stats.chunks_written;
        stats.bytes_written += length;
      }
    }
    progress.Add(length);
    return Status::Ok();
  };
  ParallelFor(manifest.chunk_count(), options, errors, manifest.chunk_size, restore_chunk);
  ST_RETURN_IF_ERROR(errors.Get());
  ST_RETURN_IF_ERROR(target.Finish());
  std::sort(stats.damaged.begin(), stats.damaged.end(),
            [](const DamagedRange& a, const DamagedRange& b) { return a.offset < b.offset; });
  progress.Finish();
  return stats;
}

bool IsDamagedChunkError(const Status& s) {
  return s.code() == ErrorCode::kCorruption || s.code() == ErrorCode::kNotFound ||
         s.code() == ErrorCode::kAuthFailed;
}

std::optional<Status> VerifyCache::Find(const ChunkId& id) const {
  MutexLock lock(mu_);
  auto it = verdicts_.find(id);
  if (it == verdicts_.end()) return std::nullopt;
  return it->second;
}

void VerifyCache::Record(const ChunkId& id, const Status& verdict) {
  MutexLock lock(mu_);
  verdicts_.emplace(id, verdict);
}

Result<VerifyReport> Verify(const Manifest& manifest, const Codec& codec, ChunkSource& source,
                            const RestoreOptions& options, VerifyCache* cache) {
  // First use of each distinct id: verify reads each stored chunk once.
  std::vector<uint64_t> firsts;
  {
    std::unordered_map<ChunkId, uint64_t, ChunkIdHash> seen;
    for (uint64_t i = 0; i < manifest.chunk_count(); ++i) {
      const ChunkId& id = manifest.chunks[i];
      if (!id.is_hole() && seen.emplace(id, i).second) firsts.push_back(i);
    }
  }
  VerifyReport report;
  Mutex mu;  // guards report
  FirstError errors;  // only cancellation lands here; bad chunks are collected
  ProgressReporter progress(options.progress, firsts.size() * uint64_t{manifest.chunk_size});
  auto verify_chunk = [&](uint64_t k, std::span<std::byte> buffer) -> Status {
    uint64_t i = firsts[k];
    const ChunkId& id = manifest.chunks[i];
    std::optional<Status> known = cache ? cache->Find(id) : std::nullopt;
    // The cache holds the chunk's own error; each snapshot adds its offset.
    Status raw = known ? *known : OpenChunk(manifest, codec, source, i, buffer).status();
    if (!known && cache) cache->Record(id, raw);
    Status verdict = raw.ok() ? raw : raw.WithContext(ChunkWhere(i * manifest.chunk_size, id));
    MutexLock lock(mu);
    ++(known ? report.chunks_known : report.chunks_checked);
    if (!verdict.ok()) report.bad.push_back({i * manifest.chunk_size, id, verdict});
    progress.Add(manifest.chunk_size);
    return Status::Ok();
  };
  ParallelFor(firsts.size(), options, errors, manifest.chunk_size, verify_chunk);
  ST_RETURN_IF_ERROR(errors.Get());
  std::sort(report.bad.begin(), report.bad.end(),
            [](const BadChunk& a, const BadChunk& b) { return a.offset < b.offset; });
  progress.Finish();
  return report;
}

}  // namespace sparetime
