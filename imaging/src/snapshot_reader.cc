// SnapshotReader (see snapshot_reader.h). One map from chunk index to a
// shared Entry: an entry is "in flight" until its fetch publishes it under
// mu_ (ready_cv_ wakes the waiters), then either holds the plaintext (and
// sits in the LRU list) or is erased with its error. Entry fields are only
// touched under mu_ until ready; after that `data` is immutable, so readers
// copy from it without the lock while their shared_ptr keeps it alive.
#include "sparetime/imaging/snapshot_reader.h"

#include <algorithm>
#include <cstring>

namespace sparetime {
namespace {

std::string ChunkWhere(uint64_t offset, const ChunkId& id) {
  return "chunk at offset " + std::to_string(offset) + " (id " + id.short_hex() + ")";
}

unsigned ReadaheadFor(const SnapshotReaderOptions& o, uint32_t chunk_size) {
  uint64_t fit = chunk_size ? o.cache_bytes / chunk_size : 0;
  uint64_t max = fit > 2 ? fit - 2 : 0;
  return static_cast<unsigned>(std::min<uint64_t>(o.readahead_chunks, max));
}

}  // namespace

SnapshotReader::SnapshotReader(Manifest manifest, const Codec& codec, ChunkSource& source,
                               SnapshotReaderOptions options)
    : manifest_(std::move(manifest)),
      codec_(codec),
      source_(source),
      options_(std::move(options)),
      readahead_(ReadaheadFor(options_, manifest_.chunk_size)),
      pool_(std::make_unique<WorkerPool>(std::max(1u, options_.fetch_threads))) {}

SnapshotReader::~SnapshotReader() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  pool_.reset();  // queued read-ahead sees stopping_ and returns at once
}

SnapshotReaderStats SnapshotReader::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

void SnapshotReader::EvictLocked() {
  while (stats_.cached_bytes > options_.cache_bytes && !lru_.empty()) {
    uint64_t victim = lru_.back();
    lru_.pop_back();
    entries_.erase(victim);
    stats_.cached_bytes -= manifest_.ChunkLength(victim);
  }
  // Fetches in flight are never evicted: demand fetches of many threads at
  // once may hold more, which peak_cached_bytes shows.
  stats_.peak_cached_bytes = std::max(stats_.peak_cached_bytes, stats_.cached_bytes);
}

void SnapshotReader::Fetch(uint64_t index, const EntryPtr& e) {
  const ChunkId& id = manifest_.chunks[index];
  const uint64_t offset = index * manifest_.chunk_size;
  const uint64_t length = manifest_.ChunkLength(index);
  bool stopping;
  {
    MutexLock lock(mu_);
    stopping = stopping_;
  }
  std::vector<std::byte> data;
  Status st;
  if (stopping) {
    st = Cancelled("the snapshot reader is closing");
  } else {
    Result<std::vector<std::byte>> sealed = source_.Get(id);
    if (sealed.ok()) {
      data.resize(length);
      Result<size_t> size = codec_.OpenInto(BlobKind::kData, id, *sealed, data);
      if (!size.ok()) {
        st = size.status();
      } else if (*size != length) {
        st = Corruption("holds " + std::to_string(*size) + " bytes, the image needs " +
                        std::to_string(length));
      }
    } else {
      st = sealed.status();
    }
    if (!st.ok()) {
      st = st.WithContext(ChunkWhere(offset, id));
      if (options_.on_damage) options_.on_damage(offset, id, st);
    }
  }
  MutexLock lock(mu_);
  e->ready = true;
  if (st.ok()) {
    e->data = std::move(data);
    lru_.push_front(index);
    e->lru = lru_.begin();
    ++stats_.fetches;
  } else {
    e->error = st;
    auto it = entries_.find(index);
    if (it != entries_.end() && it->second == e) entries_.erase(it);
    stats_.cached_bytes -= length;
    if (!stopping) ++stats_.failures;
  }
  ready_cv_.notify_all();
  EvictLocked();
}

Result<SnapshotReader::EntryPtr> SnapshotReader::Chunk(uint64_t index, bool* hit) {
  EntryPtr e;
  bool fetch_here = false;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(index);
    if (it != entries_.end()) {
      e = it->second;
      ++stats_.cache_hits;
      *hit = true;
      if (e->ready) lru_.splice(lru_.begin(), lru_, e->lru);
    } else {
      e = std::make_shared<Entry>();
      entries_.emplace(index, e);
      stats_.cached_bytes += manifest_.ChunkLength(index);
      fetch_here = true;
      EvictLocked();
    }
  }
  if (fetch_here) Fetch(index, e);
  MutexLock lock(mu_);
  lock.Wait(ready_cv_, [&] { return e->ready; });
  if (!e->error.ok()) return e->error;
  return e;
}

void SnapshotReader::ScheduleReadahead(uint64_t from) {
  std::vector<std::pair<uint64_t, EntryPtr>> queued;
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    const uint64_t end = std::min<uint64_t>(manifest_.chunk_count(), from + readahead_);
    for (uint64_t j = from; j < end; ++j) {
      if (manifest_.chunks[j].is_hole() || entries_.count(j)) continue;
      auto e = std::make_shared<Entry>();
      entries_.emplace(j, e);
      stats_.cached_bytes += manifest_.ChunkLength(j);
      ++stats_.readahead;
      queued.emplace_back(j, std::move(e));
    }
    EvictLocked();
  }
  for (auto& [j, e] : queued) {
    pool_->Submit([this, j = j, e = e] { Fetch(j, e); });
  }
}

Result<size_t> SnapshotReader::ReadAt(uint64_t offset, std::span<std::byte> out) {
  if (offset >= manifest_.size || out.empty()) return size_t{0};
  const uint64_t n = std::min<uint64_t>(out.size(), manifest_.size - offset);
  const uint64_t cs = manifest_.chunk_size;
  const uint64_t first = offset / cs, last = (offset + n - 1) / cs;
  bool sequential;
  {
    MutexLock lock(mu_);
    // A read that starts in the chunk where the last one ended, or the next.
    sequential = next_sequential_ != UINT64_MAX &&
                 (first == next_sequential_ || first == next_sequential_ + 1);
    next_sequential_ = last;
  }
  if (sequential && readahead_ > 0) ScheduleReadahead(last + 1);
  uint64_t done = 0;
  while (done < n) {
    const uint64_t pos = offset + done;
    const uint64_t i = pos / cs;
    const uint64_t within = pos - i * cs;
    const uint64_t len = std::min<uint64_t>(manifest_.ChunkLength(i) - within, n - done);
    if (manifest_.chunks[i].is_hole()) {
      std::memset(out.data() + done, 0, len);
      MutexLock lock(mu_);
      ++stats_.holes;
    } else {
      bool hit = false;
      ST_ASSIGN_OR_RETURN(EntryPtr e, Chunk(i, &hit));
      std::memcpy(out.data() + done, e->data.data() + within, len);
    }
    done += len;
  }
  return static_cast<size_t>(n);
}

}  // namespace sparetime
