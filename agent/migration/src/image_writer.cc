// ImageWriter (see image_store.h): cuts the streamed page store into chunks
// on the kChunkPages grid of each mapping, and per batch digests them on all
// cores, asks the destination which it holds, then seals and puts the
// missing ones on all cores.
//
// Invariants: `table_` lists every appended page exactly once, in order
// (ids are filled when their batch is digested); an id is put at most once
// per image (`seen_`); at most one batch of plaintext (about
// kWriteBatchBytes) and its sealed copies are held at a time.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "parallel.h"
#include "sparetime/migration/image_store.h"

namespace sparetime::migration {
namespace {

constexpr size_t kHeldBatch = 8192;  // ids per HeldQuery call

bool IsZero(std::span<const std::byte> page) {
  return std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; });
}

Result<std::vector<bool>> HeldBySink(ChunkSink& sink, std::span<const ChunkId> ids) {
  std::vector<bool> out;
  out.reserve(ids.size());
  for (const ChunkId& id : ids) {
    ST_ASSIGN_OR_RETURN(bool has, sink.Contains(id));
    out.push_back(has);
  }
  return out;
}

// A chunk waiting in the current batch.
struct Pending {
  size_t entry = 0;  // its ChunkRef in the table
  std::vector<std::byte> data;
  bool put = false;        // not held by the destination: seal and put it
  uint64_t sealed_bytes = 0;
};

}  // namespace

class ImageWriter::Impl {
 public:
  Impl(const MigrationKey& key, ChunkSink& sink, HeldQuery held, unsigned threads)
      : key_(key), sink_(sink), held_(std::move(held)), threads_(threads ? threads : DefaultThreads()) {}

  Status Append(uint64_t mapping_start, uint64_t addr, std::span<const std::byte> data) {
    ST_RETURN_IF_ERROR(failed_);
    if (data.size() % kPageSize != 0 || addr % kPageSize != 0 || addr < mapping_start)
      return failed_ = InvalidArgument("image writer: pages at " + std::to_string(addr) + " are not whole pages of "
                                       "the mapping at " + std::to_string(mapping_start));
    const size_t n = data.size() / kPageSize;
    size_t run = 0;  // first page of the chunk being cut
    for (size_t i = 0; i <= n; ++i) {
      const bool end = i == n;
      const bool zero = !end && IsZero(data.subspan(i * kPageSize, kPageSize));
      const bool grid = !end && ((addr - mapping_start) / kPageSize + i) % kChunkPages == 0;
      if (run < i && (end || zero || grid)) ST_RETURN_IF_ERROR(Cut(data.subspan(run * kPageSize, (i - run) * kPageSize)));
      if (zero) {
        AddHole();
        run = i + 1;
      } else if (end || grid) {
        run = i;
      }
    }
    return Status::Ok();
  }

  Result<StoredImage> Finish(const ProcessImage& image, StoreStats* stats) {
    ST_RETURN_IF_ERROR(failed_);
    ST_RETURN_IF_ERROR(failed_ = Drain());
    ST_RETURN_IF_ERROR(failed_ = sink_.Flush());
    if (stats_.pages != image.page_count)
      return Internal("image writer: " + std::to_string(stats_.pages) + " pages were written, the image has " +
                      std::to_string(image.page_count));
    StoredImage out;
    ST_ASSIGN_OR_RETURN(out.manifest, EncodeManifest(image));
    out.key_check = key_.Check();
    out.chunks = std::move(table_);
    stats_.unique_chunks = seen_.size();
    if (stats) *stats = stats_;
    return out;
  }

 private:
  void AddHole() {
    ++stats_.pages;
    ++stats_.zero_pages;
    if (last_is_hole_ && table_.back().pages < UINT32_MAX) {
      ++table_.back().pages;
      return;
    }
    table_.push_back({kHoleId, 1});
    last_is_hole_ = true;
  }

  Status Cut(std::span<const std::byte> pages) {
    stats_.pages += pages.size() / kPageSize;
    ++stats_.chunks;
    table_.push_back({kHoleId, static_cast<uint32_t>(pages.size() / kPageSize)});  // id set by Drain
    last_is_hole_ = false;
    batch_.push_back({table_.size() - 1, std::vector<std::byte>(pages.begin(), pages.end())});
    batch_bytes_ += pages.size();
    if (batch_bytes_ >= kWriteBatchBytes) return failed_ = Drain();
    return Status::Ok();
  }

  // Digests, queries, seals and puts the current batch.
  Status Drain() {
    const Codec& codec = key_.codec();
    ST_RETURN_IF_ERROR(ParallelFor(batch_.size(), threads_, [&](size_t i) {
      table_[batch_[i].entry].id = codec.Id(batch_[i].data);
      return Status::Ok();
    }));
    std::vector<size_t> fresh;  // first in this image: ask the destination
    for (size_t i = 0; i < batch_.size(); ++i)
      if (seen_.insert(table_[batch_[i].entry].id).second) fresh.push_back(i);
    for (size_t b = 0; b < fresh.size(); b += kHeldBatch) {
      const size_t e = std::min(fresh.size(), b + kHeldBatch);
      std::vector<ChunkId> ids;
      for (size_t k = b; k < e; ++k) ids.push_back(table_[batch_[fresh[k]].entry].id);
      auto has = held_ ? held_(ids) : HeldBySink(sink_, ids);
      if (!has.ok()) return has.error().WithContext("asking which chunks are held");
      if (has->size() != ids.size())
        return Internal("held query answered " + std::to_string(has->size()) + " of " + std::to_string(ids.size()) +
                        " ids");
      for (size_t k = b; k < e; ++k) batch_[fresh[k]].put = !(*has)[k - b];
    }
    ST_RETURN_IF_ERROR(ParallelFor(batch_.size(), threads_, [&](size_t i) -> Status {
      Pending& p = batch_[i];
      if (!p.put) return Status::Ok();
      const ChunkId& id = table_[p.entry].id;
      std::vector<std::byte> sealed = codec.Seal(BlobKind::kData, id, p.data);
      p.sealed_bytes = sealed.size();
      return sink_.Put(id, sealed).status();
    }));
    for (const Pending& p : batch_) {
      if (!p.put) continue;
      ++stats_.new_chunks;
      stats_.new_bytes += p.sealed_bytes;
    }
    batch_.clear();
    batch_bytes_ = 0;
    return Status::Ok();
  }

  const MigrationKey& key_;
  ChunkSink& sink_;
  const HeldQuery held_;
  const unsigned threads_;
  Status failed_;
  std::vector<ChunkRef> table_;
  bool last_is_hole_ = false;  // table_.back() is a hole (not a chunk awaiting its id)
  std::unordered_set<ChunkId, ChunkIdHash> seen_;
  std::vector<Pending> batch_;
  size_t batch_bytes_ = 0;
  StoreStats stats_;
};

ImageWriter::ImageWriter(const MigrationKey& key, ChunkSink& sink, HeldQuery held, unsigned threads)
    : impl_(std::make_unique<Impl>(key, sink, std::move(held), threads)) {}
ImageWriter::~ImageWriter() = default;

Status ImageWriter::Append(uint64_t mapping_start, uint64_t addr, std::span<const std::byte> data) {
  return impl_->Append(mapping_start, addr, data);
}

Result<StoredImage> ImageWriter::Finish(const ProcessImage& image, StoreStats* stats) {
  return impl_->Finish(image, stats);
}

Result<StoredImage> StoreImage(const ProcessImage& image, const MigrationKey& key, ChunkSink& sink,
                               const HeldQuery& held, StoreStats* stats) {
  struct Piece {
    uint64_t first, count, mapping_start, addr;
  };
  std::vector<Piece> pieces;
  for (const Mapping& m : image.mappings)
    for (const PageRun& r : m.pages) pieces.push_back({r.first, r.count, m.start, r.addr});
  pieces.push_back({image.vdso.code.first, image.vdso.code.count, image.vdso.code.addr, image.vdso.code.addr});
  std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.first < b.first; });
  if (image.pages.size() != image.page_count * kPageSize)
    return InvalidArgument("StoreImage: the image holds " + std::to_string(image.pages.size()) + " bytes of pages, "
                           "not its " + std::to_string(image.page_count) + " pages");
  ImageWriter writer(key, sink, held);
  uint64_t next = 0;
  for (const Piece& p : pieces) {
    if (p.count == 0) continue;
    if (p.first != next || p.count > image.page_count - p.first)
      return InvalidArgument("StoreImage: the page runs do not cover the page store in order (a run at page " +
                             std::to_string(p.first) + ", expected " + std::to_string(next) + ")");
    ST_RETURN_IF_ERROR(writer.Append(p.mapping_start, p.addr,
                                     std::span(image.pages).subspan(p.first * kPageSize, p.count * kPageSize)));
    next += p.count;
  }
  return writer.Finish(image, stats);
}

}  // namespace sparetime::migration
