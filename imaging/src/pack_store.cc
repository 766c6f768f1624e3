// PackStore: sealed blobs appended to pack files, located through an SQLite
// index (see pack_store.h and docs/storage.md).
//
// Invariants:
//  - The index never points past durable bytes: Flush fsyncs a pack before
//    the transaction that adds its rows and raises packs.committed_size.
//  - committed_size only grows, and every byte below it is a well-formed
//    record or the file header; bytes above it are either being written by
//    the writer holding the pack's flock, or a torn tail repaired on Open.
//  - A writer appends only to packs it created and holds flock(LOCK_EX) on
//    for as long as it may append; Open repairs only packs it can lock.
//  - Puts are short critical sections: the offset is reserved under mu_,
//    the record is written outside it. Flush waits only for writes reserved
//    before it started.
//  - Lock order: flush_mu_, then mu_, then the index's own mutex.
//  - Every file operation goes through options.env (Env); only the
//    writeback hint below calls the kernel directly (it makes nothing
//    durable, so a FaultEnv power cut need not know about it).
//  - Writeback starts early: each time a pack's written bytes cross a
//    kWritebackStep boundary, the step behind it is handed to the disk
//    (sync_file_range WRITE, no wait), so Flush's fsync finds little left to
//    write and the writer thread that calls it is not held for seconds.
#include "sparetime/imaging/pack_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>

#include <algorithm>
#include <condition_variable>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "pack_index.h"
#include "pack_repack.h"
#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"

namespace sparetime {

namespace {

// Rows per page when Scrub or ListStored walks the index.
constexpr int kScrubPage = 1024;

// Bytes of a pack handed to writeback at a time (see the invariants).
constexpr uint64_t kWritebackStep = 8ull << 20;

// Starts writeback of the step that a record ending at `end` completed, if
// it completed one. Only a hint: a failure here shows up in the fsync.
void StartWriteback(int fd, uint64_t offset, uint64_t end) {
  if (offset / kWritebackStep == end / kWritebackStep) return;
  const uint64_t step_end = end / kWritebackStep * kWritebackStep;
  [[maybe_unused]] int rc = ::sync_file_range(fd, static_cast<off_t>(step_end - kWritebackStep),
                                              static_cast<off_t>(kWritebackStep),
                                              SYNC_FILE_RANGE_WRITE);
}

// A pack this writer appends to. The mutable fields are guarded by the
// store's mu_ (committed: by flush_mu_).
struct OpenPack {
  uint64_t id = 0;
  std::string path;
  Fd fd;                              // read-write, flock(LOCK_EX) held
  uint64_t end = 0;                   // reserved end: bytes below are written or being written
  uint64_t committed = 0;             // committed_size in the index (set under flush_mu_)
  int inflight = 0;                   // writes reserved and not yet finished
  std::optional<uint64_t> failed_at;  // a write there failed; the pack is cut back to it
  Status failure;

  // Where the pack ends once its in-flight writes are done.
  uint64_t usable_end() const { return failed_at ? std::min(end, *failed_at) : end; }
};

// A Put not yet in the index.
struct Pending {
  std::shared_ptr<OpenPack> pack;
  uint64_t offset = 0;
  uint32_t length = 0;
  BlobHash hash{};
  uint64_t seq = 0;      // reservation order
  bool written = false;  // the record is completely in the file
};

}  // namespace

class PackStore::Impl {
 public:
  Impl(PackStoreOptions options, std::unique_ptr<PackIndex> index)
      : options_(options), env_(*options.env), index_(std::move(index)) {}

  Status Recover();
  Result<bool> Contains(const ChunkId& id) EXCLUDES(mu_);
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed)
      EXCLUDES(flush_mu_, mu_);
  Status Flush() EXCLUDES(flush_mu_, mu_);
  Result<std::vector<std::byte>> Get(const ChunkId& id) EXCLUDES(mu_);
  Status Remove(std::span<const ChunkId> ids) EXCLUDES(flush_mu_, mu_);
  Result<std::vector<StoredChunk>> ListStored() EXCLUDES(flush_mu_, mu_);
  Result<uint64_t> RemoveStored(std::span<const ChunkId> ids) EXCLUDES(flush_mu_, mu_);
  Result<RepackReport> Repack(double live_fraction) EXCLUDES(flush_mu_, mu_);
  PackStoreStats Stats() EXCLUDES(flush_mu_, mu_);
  Result<uint64_t> Scrub(const std::function<void(const ChunkId&, const Status&)>& bad);
  const PackRecovery& recovery() const { return recovery_; }
  PackIndex& index() { return *index_; }

 private:
  Status FlushLocked() REQUIRES(flush_mu_) EXCLUDES(mu_);
  Result<std::shared_ptr<OpenPack>> CreatePack() REQUIRES(mu_);
  Status FinishWrite(const ChunkId& id, const std::shared_ptr<OpenPack>& pack, uint64_t offset,
                     uint64_t seq, Status written) EXCLUDES(mu_);
  Status RecoverPack(const PackInfo& pack);

  BlobCheck GetCheck() const {
    return options_.hash_check_on_get ? BlobCheck::kHash : BlobCheck::kHeaderOnly;
  }

  const PackStoreOptions options_;
  Env& env_;
  const std::unique_ptr<PackIndex> index_;
  PackRecovery recovery_;

  Mutex flush_mu_ ACQUIRED_BEFORE(mu_);  // one Flush, Remove or Stats at a time

  Mutex mu_;                        // guards the writer state below
  std::condition_variable_any cv_;  // a write finished
  std::shared_ptr<OpenPack> current_ GUARDED_BY(mu_);
  // Rolled or failed, not yet fully committed.
  std::vector<std::shared_ptr<OpenPack>> retired_ GUARDED_BY(mu_);
  std::unordered_map<ChunkId, Pending, ChunkIdHash> pending_ GUARDED_BY(mu_);
  std::set<uint64_t> inflight_seqs_ GUARDED_BY(mu_);
  uint64_t next_seq_ GUARDED_BY(mu_) = 0;
  // Bumped when a Flush moves pending ids into the index.
  uint64_t flush_gen_ GUARDED_BY(mu_) = 0;
};

namespace {

// Reads an indexed record from its pack file, opening the file for this read.
Result<std::vector<std::byte>> ReadIndexed(Env& env, const IndexRow& r,
                                           BlobCheck check = BlobCheck::kHash) {
  if (r.loc.pack_path.empty())
    return Corruption("chunk " + r.id.hex() + " is indexed in pack " + std::to_string(r.pack) +
                      ", which the index does not list; restore index.db from a copy");
  Result<Fd> fd = env.Open(r.loc.pack_path, O_RDONLY, 0);
  if (!fd.ok() && fd.error().code() == ErrorCode::kNotFound)
    return Corruption("pack " + r.loc.pack_path + " is missing: chunk " + r.id.hex() + " (offset " +
                      std::to_string(r.loc.offset) +
                      ") cannot be read; restore the pack file from a copy of the store");
  if (!fd.ok()) return fd.error().WithContext("reading chunk " + r.id.hex());
  return ReadRecord(env, fd->get(), r.id, r.loc, check);
}

}  // namespace

// --- Writing --------------------------------------------------------------------

Result<std::shared_ptr<OpenPack>> PackStore::Impl::CreatePack() {
  ST_ASSIGN_OR_RETURN(NewPack created, CreatePackFile(env_, *index_));
  auto pack = std::make_shared<OpenPack>();
  pack->id = created.info.id;
  pack->path = created.info.path;
  pack->fd = std::move(created.fd);
  pack->end = kPackHeaderSize;
  return pack;
}

Result<bool> PackStore::Impl::Put(const ChunkId& id, std::span<const std::byte> sealed) {
  if (sealed.size() > options_.max_blob_bytes)
    return InvalidArgument("chunk " + id.hex() + " is " + std::to_string(sealed.size()) +
                           " bytes, more than the pack store's limit of " +
                           std::to_string(options_.max_blob_bytes));
  uint64_t gen;
  {
    MutexLock l(mu_);
    if (pending_.contains(id)) return true;
    gen = flush_gen_;
  }
  ST_ASSIGN_OR_RETURN(bool indexed, index_->Contains(id));
  if (indexed) return true;

  const std::vector<std::byte> record = EncodeRecord(id, sealed);
  const BlobHash hash = HashBlob(sealed);
  std::shared_ptr<OpenPack> pack;
  uint64_t offset, seq;
  bool rolled = false;
  {
    MutexLock l(mu_);
    if (pending_.contains(id)) return true;
    if (flush_gen_ != gen) {  // a Flush indexed pending ids since we looked
      ST_ASSIGN_OR_RETURN(indexed, index_->Contains(id));
      if (indexed) return true;
    }
    if (current_ && current_->end > kPackHeaderSize &&
        current_->end + record.size() > options_.target_pack_bytes) {
      retired_.push_back(std::move(current_));
      current_.reset();
      rolled = true;
    }
    if (!current_) {
      ST_ASSIGN_OR_RETURN(current_, CreatePack());
    }
    pack = current_;
    offset = pack->end;
    pack->end += record.size();
    ++pack->inflight;
    seq = next_seq_++;
    inflight_seqs_.insert(seq);
    pending_.emplace(id, Pending{pack, offset, static_cast<uint32_t>(sealed.size()), hash, seq});
  }
  ST_RETURN_IF_ERROR(
      FinishWrite(id, pack, offset, seq, env_.WriteAt(pack->fd.get(), record, offset)));
  StartWriteback(pack->fd.get(), offset, offset + record.size());
  if (rolled) ST_RETURN_IF_ERROR(Flush());  // commit the pack we just closed
  return false;
}

Status PackStore::Impl::FinishWrite(const ChunkId& id, const std::shared_ptr<OpenPack>& pack,
                                    uint64_t offset, uint64_t seq, Status st) {
  MutexLock l(mu_);
  inflight_seqs_.erase(seq);
  --pack->inflight;
  if (!st.ok()) {
    st = st.WithContext("storing chunk " + id.hex() + " in pack " + pack->path);
    if (!pack->failed_at || offset < *pack->failed_at) {
      pack->failed_at = offset;
      pack->failure = st;
    }
    if (current_ == pack) {  // append no more to it; the next Put starts a new pack
      retired_.push_back(std::move(current_));
      current_.reset();
    }
  } else if (pack->failed_at && offset > *pack->failed_at) {
    st = pack->failure.WithContext("chunk " + id.hex() + " was written after a failed write");
  }
  auto it = pending_.find(id);
  if (it != pending_.end() && it->second.seq == seq) {
    if (st.ok())
      it->second.written = true;
    else
      pending_.erase(it);
  }
  if (pack->failed_at && pack->inflight == 0) {
    // Cut the partial record now. Should that fail too, the bytes lie beyond
    // committed_size and the next Open cuts them.
    env_.Truncate(pack->fd.get(), *pack->failed_at).IgnoreError();
  }
  cv_.notify_all();
  return st;
}

Status PackStore::Impl::Flush() {
  MutexLock flush_lock(flush_mu_);
  return FlushLocked();
}

Status PackStore::Impl::FlushLocked() {
  std::vector<std::pair<std::shared_ptr<OpenPack>, uint64_t>> packs;  // pack, new committed size
  std::vector<IndexEntry> rows;
  std::vector<uint64_t> seqs;
  {
    MutexLock l(mu_);
    const uint64_t limit = next_seq_;
    // Everything reserved so far lies below each pack's current end.
    if (current_) packs.emplace_back(current_, current_->end);
    for (const auto& p : retired_) packs.emplace_back(p, p->end);
    l.Wait(cv_, [&] {
      mu_.AssertHeld();
      return inflight_seqs_.empty() || *inflight_seqs_.begin() >= limit;
    });
    for (const auto& [id, p] : pending_) {
      if (p.seq >= limit) continue;
      rows.push_back({id, p.pack->id, p.offset, p.length, p.hash});
      seqs.push_back(p.seq);
    }
    for (auto& [pack, size] : packs)
      if (pack->failed_at) size = std::min(size, *pack->failed_at);
  }
  std::erase_if(packs, [](const auto& p) { return p.second <= p.first->committed; });
  if (rows.empty() && packs.empty()) return Status::Ok();
  std::vector<std::pair<uint64_t, uint64_t>> sizes;
  for (const auto& [pack, size] : packs) {
    ST_RETURN_IF_ERROR(env_.Sync(pack->fd.get(), SyncMode::kFull, pack->path));
    sizes.emplace_back(pack->id, size);
  }
  ST_RETURN_IF_ERROR(index_->Commit(rows, sizes).status().WithContext("flushing the pack store"));

  MutexLock l(mu_);
  for (size_t i = 0; i < rows.size(); ++i) {
    auto it = pending_.find(rows[i].id);
    if (it != pending_.end() && it->second.seq == seqs[i]) pending_.erase(it);
  }
  ++flush_gen_;
  for (const auto& [pack, size] : packs) pack->committed = size;
  // Dropping a fully committed retired pack closes it and releases its lock.
  std::erase_if(retired_, [](const std::shared_ptr<OpenPack>& p) {
    return p->inflight == 0 && p->committed >= p->usable_end();
  });
  return Status::Ok();
}

// Flushes first, so that a removed chunk (even one still pending) lies below
// committed_size and no recovery can index it again. A Put racing with the
// Remove of the same id may win.
Status PackStore::Impl::Remove(std::span<const ChunkId> ids) {
  MutexLock flush_lock(flush_mu_);
  ST_RETURN_IF_ERROR(FlushLocked());
  return index_->Remove(ids);
}

Result<uint64_t> PackStore::Impl::RemoveStored(std::span<const ChunkId> ids) {
  MutexLock flush_lock(flush_mu_);
  ST_RETURN_IF_ERROR(FlushLocked());
  uint64_t bytes = 0;
  for (const ChunkId& id : ids) {
    ST_ASSIGN_OR_RETURN(std::optional<IndexRow> row, index_->Find(id));
    if (row) bytes += row->loc.length;
  }
  ST_RETURN_IF_ERROR(index_->Remove(ids));
  return bytes;
}

Result<RepackReport> PackStore::Impl::Repack(double live_fraction) {
  MutexLock flush_lock(flush_mu_);
  ST_RETURN_IF_ERROR(FlushLocked());
  std::set<uint64_t> own;
  {
    MutexLock l(mu_);
    if (current_) own.insert(current_->id);
    for (const auto& p : retired_) own.insert(p->id);
  }
  return RepackPacks(*index_, options_, own, live_fraction);
}

// --- Reading --------------------------------------------------------------------

Result<bool> PackStore::Impl::Contains(const ChunkId& id) {
  {
    // Pending first: Flush indexes ids before it drops them from pending_.
    MutexLock l(mu_);
    if (pending_.contains(id)) return true;
  }
  return index_->Contains(id);
}

Result<std::vector<std::byte>> PackStore::Impl::Get(const ChunkId& id) {
  std::optional<Pending> pending;
  {
    MutexLock l(mu_);
    auto it = pending_.end();
    l.Wait(cv_, [&] {  // a Put in flight: wait for its write to finish
      mu_.AssertHeld();
      it = pending_.find(id);
      return it == pending_.end() || it->second.written;
    });
    if (it != pending_.end()) pending = it->second;
  }
  if (pending) {
    const RecordLocation loc{pending->pack->path, pending->offset, pending->length, pending->hash};
    return ReadRecord(env_, pending->pack->fd.get(), id, loc, GetCheck());
  }
  ST_ASSIGN_OR_RETURN(std::optional<IndexRow> row, index_->Find(id));
  if (!row) {
    ST_ASSIGN_OR_RETURN(std::optional<std::string> damaged, index_->DamagedError(id));
    if (damaged) {
      return Corruption("chunk " + id.hex() + " was found damaged (" + *damaged +
                        ") and is no longer stored; the next backup of a device that still "
                        "holds its data stores it again (or `sparetime repair --source DEVICE`)");
    }
    return NotFound("chunk " + id.hex() + " is not in the pack store " + index_->dir());
  }
  return ReadIndexed(env_, *row, GetCheck());
}

PackStoreStats PackStore::Impl::Stats() {
  MutexLock flush_lock(flush_mu_);  // no chunk counted both pending and indexed
  PackStoreStats s = index_->Counts();
  MutexLock l(mu_);
  for (const auto& [id, p] : pending_) {
    ++s.chunks;
    s.stored_bytes += p.length;
  }
  return s;
}

Result<std::vector<StoredChunk>> PackStore::Impl::ListStored() {
  ST_RETURN_IF_ERROR(Flush());  // pending puts are stored chunks too
  std::vector<StoredChunk> out;
  std::vector<std::byte> after;  // the empty blob sorts before every id
  for (;;) {
    ST_ASSIGN_OR_RETURN(std::vector<IndexRow> page, index_->Page(after, kScrubPage));
    if (page.empty()) return out;
    after.assign(page.back().id.bytes.begin(), page.back().id.bytes.end());
    for (const IndexRow& r : page) out.push_back({r.id, r.loc.length});
  }
}

Result<uint64_t> PackStore::Impl::Scrub(
    const std::function<void(const ChunkId&, const Status&)>& bad) {
  uint64_t checked = 0;
  std::vector<std::byte> after;  // the empty blob sorts before every id
  for (;;) {
    ST_ASSIGN_OR_RETURN(std::vector<IndexRow> page, index_->Page(after, kScrubPage));
    if (page.empty()) return checked;
    after.assign(page.back().id.bytes.begin(), page.back().id.bytes.end());
    // Read each page in file order.
    std::sort(page.begin(), page.end(), [](const IndexRow& a, const IndexRow& b) {
      return std::tie(a.pack, a.loc.offset) < std::tie(b.pack, b.loc.offset);
    });
    for (const IndexRow& r : page) {
      Result<std::vector<std::byte>> blob = ReadIndexed(env_, r);
      ++checked;
      if (!blob.ok()) bad(r.id, blob.error());
    }
  }
}

// --- Recovery -------------------------------------------------------------------

Status PackStore::Impl::Recover() {
  ST_ASSIGN_OR_RETURN(std::vector<PackInfo> packs, index_->ListPacks());
  for (const PackInfo& pack : packs) ST_RETURN_IF_ERROR(RecoverPack(pack));
  return Status::Ok();
}

// Repairs one pack's tail, if it has one and no live writer holds the pack.
// A missing or short pack is left alone: Get and Scrub report it.
Status PackStore::Impl::RecoverPack(const PackInfo& pack) {
  Result<Fd> fd = env_.Open(pack.path, O_RDWR, 0);
  if (!fd.ok() && fd.error().code() == ErrorCode::kNotFound) return Status::Ok();
  if (!fd.ok()) return fd.error().WithContext("checking pack " + pack.path);
  Status locked = env_.Lock(fd->get(), LOCK_EX | LOCK_NB, pack.path);
  if (locked.code() == ErrorCode::kUnavailable) return Status::Ok();  // a live writer's pack
  ST_RETURN_IF_ERROR(locked);
  // Under the lock, committed_size and the file size are stable.
  Result<uint64_t> committed = index_->CommittedSize(pack.id);
  if (!committed.ok() && committed.error().code() == ErrorCode::kNotFound) return Status::Ok();
  if (!committed.ok()) return committed.error();
  ST_ASSIGN_OR_RETURN(const uint64_t size, env_.FileSize(fd->get()));
  if (size <= *committed) return Status::Ok();

  ST_ASSIGN_OR_RETURN(PackScan scan, ScanPack(env_, fd->get(), pack.path, *committed, size,
                                              options_.max_blob_bytes));
  if (scan.valid_end < size)
    ST_RETURN_IF_ERROR(env_.Truncate(fd->get(), scan.valid_end)
                           .WithContext("cutting the torn tail of pack " + pack.path));
  ST_RETURN_IF_ERROR(env_.Sync(fd->get(), SyncMode::kFull, pack.path));
  std::vector<IndexEntry> rows;
  for (const ScannedRecord& r : scan.records)
    rows.push_back({r.id, pack.id, r.offset, r.length, r.hash});
  const std::pair<uint64_t, uint64_t> size_row{pack.id, scan.valid_end};
  ST_ASSIGN_OR_RETURN(uint64_t added, index_->Commit(rows, {&size_row, 1}));
  ++recovery_.packs_repaired;
  recovery_.records_recovered += added;
  recovery_.bytes_truncated += size - scan.valid_end;
  return Status::Ok();
}

// --- PackStore ------------------------------------------------------------------

namespace {

Result<std::unique_ptr<PackStore::Impl>> OpenImpl(const std::string& dir, PackStoreOptions options,
                                                  SqliteDb::Mode mode) {
  if (sodium_init() < 0) return Internal("libsodium failed to initialise");
  ST_ASSIGN_OR_RETURN(std::unique_ptr<PackIndex> index, PackIndex::Open(dir, mode, options.env));
  auto impl = std::make_unique<PackStore::Impl>(options, std::move(index));
  ST_RETURN_IF_ERROR(impl->Recover());
  return impl;
}

Result<bool> HasIndex(Env& env, const std::string& dir) { return env.Exists(dir + "/index.db"); }

}  // namespace

Result<std::unique_ptr<PackStore>> PackStore::Create(const std::string& dir,
                                                     PackStoreOptions options) {
  Env& env = *options.env;
  ST_ASSIGN_OR_RETURN(const bool existed, env.Exists(dir));
  ST_RETURN_IF_ERROR(MakeDirs(env, dir + "/packs"));
  ST_ASSIGN_OR_RETURN(const bool has_index, HasIndex(env, dir));
  if (has_index)
    return AlreadyExists(dir + " already holds a pack store (index.db); open it instead");
  ST_ASSIGN_OR_RETURN(std::unique_ptr<Impl> impl, OpenImpl(dir, options, SqliteDb::Mode::kCreate));
  // index.db and packs/ are entries of dir; a new dir is an entry of its parent.
  ST_RETURN_IF_ERROR(env.SyncDir(dir));
  if (!existed) ST_RETURN_IF_ERROR(env.SyncDir(DirName(dir)));
  return std::unique_ptr<PackStore>(new PackStore(std::move(impl)));
}

Result<std::unique_ptr<PackStore>> PackStore::Open(const std::string& dir,
                                                   PackStoreOptions options) {
  ST_ASSIGN_OR_RETURN(const bool has_index, HasIndex(*options.env, dir));
  if (!has_index)
    return NotFound(dir +
                    " holds no pack store (no index.db); check the path, or create one "
                    "with `sparetime init`");
  ST_ASSIGN_OR_RETURN(std::unique_ptr<Impl> impl,
                      OpenImpl(dir, options, SqliteDb::Mode::kExisting));
  return std::unique_ptr<PackStore>(new PackStore(std::move(impl)));
}

PackStore::PackStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackStore::~PackStore() = default;

Result<bool> PackStore::Contains(const ChunkId& id) { return impl_->Contains(id); }
Result<bool> PackStore::Put(const ChunkId& id, std::span<const std::byte> sealed) {
  return impl_->Put(id, sealed);
}
Status PackStore::Flush() { return impl_->Flush(); }
Result<std::vector<std::byte>> PackStore::Get(const ChunkId& id) { return impl_->Get(id); }
Status PackStore::Remove(std::span<const ChunkId> ids) { return impl_->Remove(ids); }
Result<std::vector<StoredChunk>> PackStore::ListStored() { return impl_->ListStored(); }
Result<uint64_t> PackStore::RemoveStored(std::span<const ChunkId> ids) {
  return impl_->RemoveStored(ids);
}
Result<RepackReport> PackStore::Repack(double live_fraction) {
  return impl_->Repack(live_fraction);
}
PackStoreStats PackStore::Stats() { return impl_->Stats(); }
Status PackStore::MarkDamaged(std::span<const DamagedChunk> chunks) {
  ST_RETURN_IF_ERROR(Flush());  // a pending Put of one of them is indexed first, then dropped
  return impl_->index().MarkDamaged(chunks);
}
Result<std::vector<DamagedChunk>> PackStore::Damaged() { return impl_->index().ListDamaged(); }
Result<std::vector<ChunkId>> PackStore::ListDamagedRecords() {
  ST_ASSIGN_OR_RETURN(std::vector<DamagedChunk> damaged, impl_->index().ListDamaged());
  std::vector<ChunkId> ids;
  for (const DamagedChunk& d : damaged) ids.push_back(d.id);
  return ids;
}
Status PackStore::DropDamagedRecords(std::span<const ChunkId> ids) {
  return impl_->index().ForgetDamaged(ids);
}
Status PackStore::CheckIntegrity(bool full) { return impl_->index().CheckIntegrity(full); }
const PackRecovery& PackStore::recovery() const { return impl_->recovery(); }
Result<uint64_t> PackStore::Scrub(const std::function<void(const ChunkId&, const Status&)>& bad) {
  return impl_->Scrub(bad);
}

}  // namespace sparetime
