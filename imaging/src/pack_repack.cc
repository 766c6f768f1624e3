// Creating packs and rewriting mostly dead ones (see pack_repack.h for the
// crash-safety argument).
//
// Invariants: an old pack's file is unlinked only after the transaction that
// moved all its live rows committed, and that transaction only after the
// records it points at were fsynced in their new packs; an old pack is
// rewritten only while this process holds flock(LOCK_EX) on it, so a live
// writer's pack is never touched.
#include "pack_repack.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cstdio>

namespace sparetime {
namespace {

std::string ParentDir(const std::string& path) { return path.substr(0, path.rfind('/')); }

// The packs a repack writes into, rolled at target_pack_bytes and kept open
// (locked) until the repack ends.
class RepackWriter {
 public:
  RepackWriter(PackIndex& index, const PackStoreOptions& options)
      : env_(*options.env), index_(index), options_(options) {}

  // Appends one record; returns its new row (durable after Sync).
  Result<IndexEntry> Append(const IndexRow& row, std::span<const std::byte> blob) {
    const std::vector<std::byte> record = EncodeRecord(row.id, blob);
    if (outs_.empty() || (outs_.back().end > kPackHeaderSize &&
                          outs_.back().end + record.size() > options_.target_pack_bytes)) {
      ST_ASSIGN_OR_RETURN(NewPack created, CreatePackFile(env_, index_));
      outs_.push_back({std::move(created), kPackHeaderSize, false});
      bytes_ += kPackHeaderSize;
    }
    Out& o = outs_.back();
    ST_RETURN_IF_ERROR(env_.WriteAt(o.pack.fd.get(), record, o.end));
    IndexEntry e{row.id, o.pack.info.id, o.end, row.loc.length, row.loc.hash};
    o.end += record.size();
    o.dirty = true;
    bytes_ += record.size();
    return e;
  }

  // Fsyncs the packs appended to since the last Sync; returns their
  // (pack, committed size) pairs for the index.
  Result<std::vector<std::pair<uint64_t, uint64_t>>> Sync() {
    std::vector<std::pair<uint64_t, uint64_t>> sizes;
    for (Out& o : outs_) {
      if (!o.dirty) continue;
      ST_RETURN_IF_ERROR(env_.Sync(o.pack.fd.get(), SyncMode::kFull, o.pack.info.path));
      sizes.emplace_back(o.pack.info.id, o.end);
      o.dirty = false;
    }
    return sizes;
  }

  // File bytes written (headers included).
  uint64_t bytes() const { return bytes_; }

 private:
  struct Out {
    NewPack pack;
    uint64_t end = 0;
    bool dirty = false;
  };
  Env& env_;
  PackIndex& index_;
  const PackStoreOptions& options_;
  std::vector<Out> outs_;
  uint64_t bytes_ = 0;
};

// Whether `u` is mostly dead: its live records fill less than `fraction`.
bool MostlyDead(const PackUsage& u, double fraction) {
  const uint64_t live = u.live_bytes + u.live_chunks * kRecordHeaderSize;
  return static_cast<double>(live) < fraction * static_cast<double>(u.committed_size - kPackHeaderSize);
}

// Deletes an empty pack's file (unless a writer holds it) and its row;
// returns the file bytes given back.
Result<uint64_t> DropEmptyPack(Env& env, PackIndex& index, const PackInfo& pack) {
  Result<Fd> fd = env.Open(pack.path, O_RDWR, 0);
  if (!fd.ok() && fd.error().code() != ErrorCode::kNotFound)
    return fd.error().WithContext("repacking");
  uint64_t size = 0;
  if (fd.ok()) {
    Status locked = env.Lock(fd->get(), LOCK_EX | LOCK_NB, pack.path);
    if (locked.code() == ErrorCode::kUnavailable) return uint64_t{0};  // being written
    ST_RETURN_IF_ERROR(locked);
    Result<uint64_t> n = env.FileSize(fd->get());
    size = n.ok() ? *n : 0;
    Status gone = env.Unlink(pack.path);
    if (!gone.ok() && gone.code() != ErrorCode::kNotFound)
      return gone.WithContext("deleting empty pack " + pack.path);
    ST_RETURN_IF_ERROR(env.SyncDir(ParentDir(pack.path)));
  }
  index.DropPack(pack.id);
  return size;
}

}  // namespace

Result<NewPack> CreatePackFile(Env& env, PackIndex& index) {
  // The row exists before the file: a listed pack with committed_size 0 and
  // no file is one being born (or whose birth crashed), not a damaged one.
  ST_ASSIGN_OR_RETURN(PackInfo info, index.AddPack());
  const std::string parent = ParentDir(info.path);
  Status st = MakeDirs(env, parent);
  Result<Fd> fd =
      st.ok() ? env.Open(info.path, O_RDWR | O_CREAT | O_EXCL, 0644) : Result<Fd>(st);
  if (!fd.ok() && fd.status().code() == ErrorCode::kAlreadyExists) {
    // A file under an id the index has just handed out is an orphan: a pack
    // whose birth failed, whose row was dropped and whose unlink a power cut
    // undid. No row ever pointed into it, so it holds nothing acknowledged;
    // it is reused from empty (unless a writer holds it, which no row allows).
    fd = env.Open(info.path, O_RDWR, 0);
    if (fd.ok()) {
      st = env.Lock(fd->get(), LOCK_EX | LOCK_NB, info.path);
      if (st.ok()) st = env.Truncate(fd->get(), 0);
      if (!st.ok()) fd = Result<Fd>(st);
    }
  }
  if (!fd.ok()) {
    index.DropPack(info.id);
    return fd.error().WithContext("creating a pack in " + index.dir());
  }
  // Lock before the first byte: a concurrent Open sees either an empty
  // unlocked file (nothing to repair) or a locked one (skipped).
  st = env.Lock(fd->get(), LOCK_EX, info.path);
  if (st.ok()) st = env.WriteAt(fd->get(), EncodePackHeader(), 0);
  if (st.ok()) st = env.Sync(fd->get(), SyncMode::kFull, info.path);
  if (st.ok()) st = env.SyncDir(parent);  // MakeDirs made a new packs/NN durable
  if (!st.ok()) {
    env.Unlink(info.path).IgnoreError();
    index.DropPack(info.id);
    return st.WithContext("creating pack " + info.path);
  }
  return NewPack{std::move(info), std::move(*fd)};
}

Result<RepackReport> RepackPacks(PackIndex& index, const PackStoreOptions& options,
                                 const std::set<uint64_t>& own_packs, double live_fraction) {
  RepackReport report;
  ST_ASSIGN_OR_RETURN(std::vector<PackUsage> usage, index.Usage());
  Env& env = *options.env;
  RepackWriter writer(index, options);
  uint64_t old_bytes = 0;
  for (const PackUsage& u : usage) {
    const std::string& path = u.pack.path;
    if (own_packs.contains(u.pack.id)) continue;
    if (u.committed_size <= kPackHeaderSize && u.live_chunks == 0) {
      // An empty pack: one whose creation, or a repack writing into it, was
      // cut short. Nothing points into it; drop it, or each crash leaks one.
      ST_ASSIGN_OR_RETURN(uint64_t freed, DropEmptyPack(env, index, u.pack));
      old_bytes += freed;
      continue;
    }
    if (u.committed_size <= kPackHeaderSize || !MostlyDead(u, live_fraction)) continue;
    Result<Fd> fd = env.Open(path, O_RDWR, 0);
    if (!fd.ok() && fd.error().code() == ErrorCode::kNotFound) {
      // No rows and no file: a repack stopped between unlink and drop.
      // (A missing pack with rows is damage: Get and Scrub report it.)
      if (u.live_chunks == 0) index.DropPack(u.pack.id);
      continue;
    }
    if (!fd.ok()) return fd.error().WithContext("repacking");
    Status locked = env.Lock(fd->get(), LOCK_EX | LOCK_NB, path);
    if (locked.code() == ErrorCode::kUnavailable) continue;  // a live writer's pack
    ST_RETURN_IF_ERROR(locked);
    ST_ASSIGN_OR_RETURN(std::vector<IndexRow> rows, index.RowsInPack(u.pack.id));
    std::vector<IndexEntry> moved;
    bool damaged = false;
    for (const IndexRow& r : rows) {
      Result<std::vector<std::byte>> blob = ReadRecord(env, fd->get(), r.id, r.loc);
      if (!blob.ok()) {  // leave the pack as it is; what was copied stays unindexed
        damaged = true;
        break;
      }
      ST_ASSIGN_OR_RETURN(IndexEntry e, writer.Append(r, *blob));
      moved.push_back(e);
    }
    if (damaged) {
      ++report.packs_skipped;
      continue;
    }
    ST_ASSIGN_OR_RETURN(auto sizes, writer.Sync());
    ST_RETURN_IF_ERROR(index.MoveRows(u.pack.id, moved, sizes).WithContext("repacking " + path));
    Result<uint64_t> old_size = env.FileSize(fd->get());
    old_bytes += old_size.ok() ? *old_size : u.committed_size;
    Status gone = env.Unlink(path);
    if (!gone.ok() && gone.code() != ErrorCode::kNotFound) {
      return gone.WithContext("deleting repacked pack " + path +
                              " (its chunks moved; the next prune deletes it)");
    }
    ST_RETURN_IF_ERROR(env.SyncDir(ParentDir(path)));
    index.DropPack(u.pack.id);
    ++report.packs_rewritten;
    report.chunks_moved += moved.size();
  }
  report.bytes_freed = old_bytes > writer.bytes() ? old_bytes - writer.bytes() : 0;
  return report;
}

std::string RepackReport::ToString() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "repacked %llu pack(s) (%llu chunks moved), %.1f MiB freed",
                static_cast<unsigned long long>(packs_rewritten),
                static_cast<unsigned long long>(chunks_moved),
                static_cast<double>(bytes_freed) / (1 << 20));
  std::string out = buf;
  if (packs_skipped > 0) {
    out += "; " + std::to_string(packs_skipped) +
           " pack(s) with a damaged record left as they are (run `sparetime verify`)";
  }
  return out;
}

}  // namespace sparetime
