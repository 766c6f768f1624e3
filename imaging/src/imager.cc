// Imager: the backup pipeline (see imager.h for the shape and invariants).
//
// Resume invariant: a chunk index is journaled only after its blob was
// acknowledged by sink.Put and the sink was flushed, so everything the journal
// lists is durable; on resume those indices are skipped (their ids re-checked
// against the sink, since a store can lose chunks to forget/prune).
//
// Checkpoints run on their own thread: a worker that completes a batch queues
// it (every entry of it was Put before) and goes on hashing and compressing
// while the checkpointer flushes the sink (fsync) and journals the batch. At
// most kQueuedCheckpoints batches wait; beyond that the pipeline waits for
// the disk.
#include "sparetime/imaging/imager.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "progress_reporter.h"
#include "sparetime/base/clock.h"
#include "sparetime/base/mutex.h"
#include "sparetime/imaging/chunker.h"
#include "sparetime/imaging/fs_allocation.h"
#include "sparetime/imaging/manifest.h"
#include "work_queue.h"

namespace sparetime {
namespace {

struct ChunkWork {
  uint64_t index;
  AlignedBuffer buffer;
};

using ProgressBatch = std::vector<std::pair<uint64_t, ChunkId>>;
constexpr size_t kQueuedCheckpoints = 4;

class BackupRun {
 public:
  BackupRun(BlockDevice& device, const BackupEnv& env, const BackupOptions& options,
            uint32_t chunk_size)
      : device_(device),
        env_(env),
        options_(options),
        chunker_(device.size(), chunk_size),
        // The path too: two clones with one filesystem UUID must not share progress.
        job_key_(device.identity().Key() + ":path=" + device.identity().path +
                 ":chunk=" + std::to_string(chunk_size) + (options.allocated ? ":fs" : "")),
        ids_(chunker_.count()),
        done_(chunker_.count(), false),
        progress_(options.progress, device.size()),
        checkpoints_(kQueuedCheckpoints) {}

  Result<Snapshot> Run();

 private:
  Status LoadResumeState();
  // Marks the chunks of options.unchanged done (after the journal's).
  Status LoadUnchanged();
  // The next chunk to read, in device order; records the holes on the way.
  std::optional<ChunkExtent> NextToRead() EXCLUDES(cursor_mu_, mu_);
  void ReadLoop(BoundedQueue<AlignedBuffer>& free, BoundedQueue<ChunkWork>& work);
  void WorkLoop(BoundedQueue<AlignedBuffer>& free, BoundedQueue<ChunkWork>& work);
  Status ProcessChunk(uint64_t index, std::span<const std::byte> data);
  void RecordHole(uint64_t index, uint64_t bytes) EXCLUDES(mu_);
  void Completed(uint64_t index, const ChunkId& id, uint64_t bytes) EXCLUDES(mu_);
  // Checkpoints the queued batches until the queue is closed; after a
  // failure it only drains (nothing more is journaled).
  void CheckpointLoop();
  // Flushes the sink and journals `batch`.
  Status Checkpoint(ProgressBatch batch);
  bool ShouldStop() const {
    return errors_.failed() || (options_.cancel && options_.cancel->load());
  }

  BlockDevice& device_;
  const BackupEnv& env_;
  const BackupOptions& options_;
  const FixedChunker chunker_;
  const std::string job_key_;
  std::vector<ChunkId> ids_ GUARDED_BY(mu_);
  std::vector<bool> done_;  // only touched before the pipeline starts
  ProgressReporter progress_;
  FirstError errors_;

  // The readers' shared position. Taken before mu_ (NextToRead records holes).
  Mutex cursor_mu_;
  uint64_t next_read_ GUARDED_BY(cursor_mu_) = 0;
  uint64_t data_from_ GUARDED_BY(cursor_mu_) = 0;  // [last lookup, data_from_) is a hole

  Mutex mu_;
  SnapshotStats stats_ GUARDED_BY(mu_);
  ProgressBatch pending_ GUARDED_BY(mu_);
  uint64_t pending_bytes_ GUARDED_BY(mu_) = 0;
  // Only the checkpointer thread checkpoints, then Run() once it has joined.
  BoundedQueue<ProgressBatch> checkpoints_;
};

Status BackupRun::LoadResumeState() {
  ST_ASSIGN_OR_RETURN(std::optional<JobProgress> progress, env_.journal.LoadProgress(job_key_));
  if (!progress) return Status::Ok();
  for (const auto& [index, id] : progress->done) {
    if (index >= chunker_.count() || done_[index]) continue;
    if (!id.is_hole()) {
      ST_ASSIGN_OR_RETURN(bool held, env_.sink.Contains(id));
      if (!held) continue;  // the store lost it since; read it again
    }
    {
      MutexLock lock(mu_);  // no other thread yet; the analysis wants it all the same
      if (id.is_hole()) ++stats_.holes;
      ids_[index] = id;
      ++stats_.resumed_chunks;
    }
    done_[index] = true;
    progress_.Add(chunker_.At(index).length);
  }
  return Status::Ok();
}

Status BackupRun::LoadUnchanged() {
  if (options_.unchanged == nullptr) return Status::Ok();
  for (const auto& [index, id] : *options_.unchanged) {
    if (index >= chunker_.count() || done_[index]) continue;
    const ChunkExtent extent = chunker_.At(index);
    // Free space now: a hole, whatever the earlier snapshot held there.
    if (options_.allocated && !AnyAllocated(*options_.allocated, extent.offset, extent.length)) {
      continue;
    }
    if (!id.is_hole()) {
      ST_ASSIGN_OR_RETURN(bool held, env_.sink.Contains(id));
      if (!held) continue;  // pruned or damaged since: read it
    }
    {
      MutexLock lock(mu_);  // no other thread yet
      if (id.is_hole()) ++stats_.holes;
      ids_[index] = id;
    }
    done_[index] = true;
    progress_.Add(extent.length);
  }
  return Status::Ok();
}

std::optional<ChunkExtent> BackupRun::NextToRead() {
  MutexLock lock(cursor_mu_);
  for (; next_read_ < chunker_.count() && !ShouldStop(); ++next_read_) {
    if (done_[next_read_]) continue;
    ChunkExtent extent = chunker_.At(next_read_);
    if (options_.allocated &&
        !AnyAllocated(*options_.allocated, extent.offset, extent.length)) {
      RecordHole(next_read_, extent.length);  // free space of the filesystem
      continue;
    }
    if (extent.offset >= data_from_) data_from_ = device_.NextDataOffset(extent.offset);
    if (data_from_ >= extent.offset + extent.length) {
      RecordHole(next_read_, extent.length);  // a hole in a sparse file: nothing to read
      continue;
    }
    ++next_read_;
    return extent;
  }
  return std::nullopt;
}

void BackupRun::ReadLoop(BoundedQueue<AlignedBuffer>& free, BoundedQueue<ChunkWork>& work) {
  while (std::optional<ChunkExtent> extent = NextToRead()) {
    std::optional<AlignedBuffer> buffer = free.Pop();
    if (!buffer) break;
    // Last, right before the read: waiting for a buffer can take a while.
    if (options_.pause) {
      if (Status st = options_.pause->WaitWhilePaused(extent->length); !st.ok()) {
        errors_.Set(st);
        break;
      }
    }
    Result<size_t> got = device_.ReadAt(extent->offset, buffer->span().first(extent->length));
    if (!got.ok()) {
      errors_.Set(got.status());
      break;
    }
    if (*got != extent->length) {
      errors_.Set(IoError(device_.identity().path + ": device ended at offset " +
                          std::to_string(extent->offset + *got) + ", expected " +
                          std::to_string(device_.size()) +
                          " bytes (did it shrink during the backup?)"));
      break;
    }
    // The free bytes of a partly allocated chunk: zeroes, so no deleted
    // file's residue is hashed or stored (and the chunk compresses better).
    if (options_.allocated) {
      ZeroUnallocated(*options_.allocated, extent->offset, buffer->span().first(extent->length));
    }
    if (!work.Push(ChunkWork{extent->index, std::move(*buffer)})) break;
  }
}

void BackupRun::WorkLoop(BoundedQueue<AlignedBuffer>& free, BoundedQueue<ChunkWork>& work) {
  while (std::optional<ChunkWork> item = work.Pop()) {
    ChunkExtent extent = chunker_.At(item->index);
    if (!ShouldStop()) {
      errors_.Set(ProcessChunk(item->index, item->buffer.span().first(extent.length)));
    }
    device_.DoneWith(extent.offset, extent.length);
    free.Push(std::move(item->buffer));
  }
}

void BackupRun::RecordHole(uint64_t index, uint64_t bytes) {
  {
    MutexLock lock(mu_);
    ++stats_.holes;
  }
  Completed(index, kHoleId, bytes);
}

Status BackupRun::ProcessChunk(uint64_t index, std::span<const std::byte> data) {
  if (IsAllZero(data)) {
    RecordHole(index, data.size());
    return Status::Ok();
  }
  const Codec& codec = env_.codec;
  ChunkId id = codec.Id(data);
  ST_ASSIGN_OR_RETURN(bool known, env_.sink.Contains(id));
  if (!known) {
    std::vector<std::byte> sealed = codec.Seal(BlobKind::kData, id, data);
    ST_ASSIGN_OR_RETURN(bool existed, env_.sink.Put(id, sealed));
    if (!existed) {
      MutexLock lock(mu_);
      ++stats_.new_chunks;
      stats_.new_bytes += data.size();
      stats_.stored_bytes += sealed.size();
    }
  }
  Completed(index, id, data.size());
  return Status::Ok();
}

void BackupRun::Completed(uint64_t index, const ChunkId& id, uint64_t bytes) {
  ProgressBatch batch;
  {
    MutexLock lock(mu_);
    ids_[index] = id;
    pending_.emplace_back(index, id);
    pending_bytes_ += bytes;
    if (pending_bytes_ >= options_.checkpoint_bytes) {
      batch.swap(pending_);
      pending_bytes_ = 0;
    }
  }
  progress_.Add(bytes);
  // Closed only once the reader and workers are done, so this always queues.
  if (!batch.empty()) (void)checkpoints_.Push(std::move(batch));
}

void BackupRun::CheckpointLoop() {
  bool failed = false;
  while (std::optional<ProgressBatch> batch = checkpoints_.Pop()) {
    if (failed) continue;
    Status st = Checkpoint(std::move(*batch));
    failed = !st.ok();
    errors_.Set(st);
  }
}

Status BackupRun::Checkpoint(ProgressBatch batch) {
  ST_RETURN_IF_ERROR(env_.sink.Flush());
  return env_.journal.RecordProgress(job_key_, batch);
}

Result<Snapshot> BackupRun::Run() {
  auto started = std::chrono::steady_clock::now();
  ST_RETURN_IF_ERROR(LoadResumeState());
  ST_RETURN_IF_ERROR(LoadUnchanged());

  unsigned threads = options_.threads ? options_.threads
                                      : std::max(1u, std::thread::hardware_concurrency());
  unsigned in_flight = options_.chunks_in_flight ? options_.chunks_in_flight : 2 * threads + 2;
  BoundedQueue<AlignedBuffer> free(in_flight);
  BoundedQueue<ChunkWork> work(in_flight);
  for (unsigned i = 0; i < in_flight; ++i) (void)free.Push(AlignedBuffer(chunker_.chunk_size()));
  {
    std::jthread checkpointer([&] { CheckpointLoop(); });
    {
      std::vector<std::jthread> workers;
      for (unsigned i = 0; i < threads; ++i) workers.emplace_back([&] { WorkLoop(free, work); });
      {
        std::jthread second_reader([&] { ReadLoop(free, work); });
        ReadLoop(free, work);
      }
      work.Close();
    }  // joins the workers
    checkpoints_.Close();
  }  // joins the checkpointer once the queued batches are journaled

  // Journal what finished, also after an error, so the next run resumes.
  ProgressBatch rest;
  Manifest manifest;
  SnapshotStats stats;
  {
    MutexLock lock(mu_);  // every thread has been joined
    rest.swap(pending_);
    manifest.chunks = std::move(ids_);
    stats = stats_;
  }
  Status tail = rest.empty() ? Status::Ok() : Checkpoint(std::move(rest));
  if (errors_.failed()) return errors_.Get();
  if (options_.cancel && options_.cancel->load()) {
    return Cancelled("backup of " + device_.identity().path +
                     " was interrupted; run it again to resume where it stopped");
  }
  ST_RETURN_IF_ERROR(tail);

  manifest.device = device_.identity();
  manifest.size = device_.size();
  manifest.chunk_size = chunker_.chunk_size();
  ST_ASSIGN_OR_RETURN(ChunkId root, StoreManifest(manifest, env_.codec, env_.sink));
  ST_RETURN_IF_ERROR(env_.sink.Flush());
  progress_.Finish();

  Snapshot snapshot;
  snapshot.label = options_.label;
  snapshot.time = ToUnixSeconds(SystemClock().WallNow());
  snapshot.device = device_.identity();
  snapshot.size = manifest.size;
  snapshot.chunk_size = manifest.chunk_size;
  snapshot.manifest_root = root;
  snapshot.stats = stats;
  snapshot.stats.chunks = chunker_.count();
  snapshot.stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ST_ASSIGN_OR_RETURN(Snapshot stored, env_.recorder.AddSnapshot(std::move(snapshot)));
  ST_RETURN_IF_ERROR(env_.journal.ClearProgress(job_key_));
  return stored;
}

}  // namespace

Result<Snapshot> Backup(BlockDevice& device, const BackupEnv& env, const BackupOptions& options) {
  uint32_t chunk_size = options.chunk_size ? options.chunk_size : kDefaultChunkSize;
  ST_RETURN_IF_ERROR(ValidateChunkSize(chunk_size));
  BackupRun run(device, env, options, chunk_size);
  return run.Run();
}

}  // namespace sparetime
