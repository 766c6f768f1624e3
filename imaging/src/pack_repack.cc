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
#include <optional>

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
      outs_.push_back({std::move(created), kPackHeaderSize, false, 0});
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

  // The index now holds the sizes Sync returned.
  void Committed() {
    for (Out& o : outs_) o.committed = o.end;
  }

  // After a failure (a full disk): cuts every new pack back to what the
  // index holds of it, and deletes those it holds nothing of, so a stopped
  // repack leaves no partial pack eating the room it was short of. Best
  // effort: bytes past committed_size are a torn tail the next Open cuts.
  void Abandon() {
    for (Out& o : outs_) {
      if (o.committed > kPackHeaderSize) {
        if (o.end > o.committed) env_.Truncate(o.pack.fd.get(), o.committed).IgnoreError();
        bytes_ -= o.end - o.committed;
        o.end = o.committed;
        o.dirty = false;
        continue;
      }
      if (env_.Unlink(o.pack.info.path).ok()) {
        env_.SyncDir(ParentDir(o.pack.info.path)).IgnoreError();
        index_.DropPack(o.pack.info.id);
      }
      bytes_ -= o.end;
      o.end = 0;
    }
    std::erase_if(outs_, [](const Out& o) { return o.end == 0; });
  }

  // File bytes written (headers included).
  uint64_t bytes() const { return bytes_; }

 private:
  struct Out {
    NewPack pack;
    uint64_t end = 0;
    bool dirty = false;
    uint64_t committed = 0;  // what the index holds of it
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

// Deletes a pack no row points into — an empty one, or one whose every
// record is dead — file first, then its row (unless a writer holds it:
// then nothing). Returns the file bytes given back, none when skipped.
Result<std::optional<uint64_t>> DropDeadPack(Env& env, PackIndex& index, const PackInfo& pack) {
  Result<Fd> fd = env.Open(pack.path, O_RDWR, 0);
  if (!fd.ok() && fd.error().code() != ErrorCode::kNotFound)
    return fd.error().WithContext("repacking");
  uint64_t size = 0;
  if (fd.ok()) {
    Status locked = env.Lock(fd->get(), LOCK_EX | LOCK_NB, pack.path);
    if (locked.code() == ErrorCode::kUnavailable) return std::optional<uint64_t>();  // being written
    ST_RETURN_IF_ERROR(locked);
    Result<uint64_t> n = env.FileSize(fd->get());
    size = n.ok() ? *n : 0;
    Status gone = env.Unlink(pack.path);
    if (!gone.ok() && gone.code() != ErrorCode::kNotFound)
      return gone.WithContext("deleting dead pack " + pack.path);
    ST_RETURN_IF_ERROR(env.SyncDir(ParentDir(pack.path)));
  }
  index.DropPack(pack.id);
  return std::optional<uint64_t>(size);
}

bool NoSpace(const Status& s) { return s.code() == ErrorCode::kNoSpace; }

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
  uint64_t old_bytes = 0;
  // Pass 1: packs no row points into go first, whole — an empty one (a
  // creation, or a repack writing into it, cut short) or one whose every
  // record is dead. That needs no room, so a full disk gets room back
  // before pass 2 writes a byte.
  std::erase_if(usage, [&](const PackUsage& u) { return own_packs.contains(u.pack.id); });
  std::vector<PackUsage> partly_live;
  for (const PackUsage& u : usage) {
    if (u.live_chunks > 0) {
      partly_live.push_back(u);
      continue;
    }
    ST_ASSIGN_OR_RETURN(std::optional<uint64_t> freed, DropDeadPack(env, index, u.pack));
    if (!freed) continue;  // a live writer's
    old_bytes += *freed;
    if (u.committed_size > kPackHeaderSize) ++report.packs_deleted;
  }
  // Pass 2: copy the live records of mostly dead packs into new ones. Out
  // of room, it stops cleanly: the new packs are cut back to what the index
  // holds, what was freed so far stays freed, and `stopped` says so.
  RepackWriter writer(index, options);
  for (const PackUsage& u : partly_live) {
    const std::string& path = u.pack.path;
    if (u.committed_size <= kPackHeaderSize || !MostlyDead(u, live_fraction)) continue;
    Result<Fd> fd = env.Open(path, O_RDWR, 0);
    if (!fd.ok() && fd.error().code() == ErrorCode::kNotFound) continue;  // damage: Scrub says
    if (!fd.ok()) return fd.error().WithContext("repacking");
    Status locked = env.Lock(fd->get(), LOCK_EX | LOCK_NB, path);
    if (locked.code() == ErrorCode::kUnavailable) continue;  // a live writer's pack
    ST_RETURN_IF_ERROR(locked);
    ST_ASSIGN_OR_RETURN(std::vector<IndexRow> rows, index.RowsInPack(u.pack.id));
    std::vector<IndexEntry> moved;
    bool damaged = false;
    Status failed;
    for (const IndexRow& r : rows) {
      Result<std::vector<std::byte>> blob = ReadRecord(env, fd->get(), r.id, r.loc);
      if (!blob.ok()) {  // leave the pack as it is; what was copied stays unindexed
        damaged = true;
        break;
      }
      Result<IndexEntry> e = writer.Append(r, *blob);
      if (!e.ok()) {
        failed = e.status();
        break;
      }
      moved.push_back(*e);
    }
    if (damaged) {
      ++report.packs_skipped;
      continue;
    }
    Result<std::vector<std::pair<uint64_t, uint64_t>>> sizes =
        failed.ok() ? writer.Sync() : Result<std::vector<std::pair<uint64_t, uint64_t>>>(failed);
    if (sizes.ok()) failed = index.MoveRows(u.pack.id, moved, *sizes).WithContext("repacking " + path);
    else failed = sizes.status();
    if (!failed.ok()) {
      writer.Abandon();
      if (!NoSpace(failed)) return failed;
      report.stopped = failed;
      break;
    }
    writer.Committed();
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
  std::snprintf(buf, sizeof buf,
                "deleted %llu dead pack(s), repacked %llu pack(s) (%llu chunks moved), %.1f MiB "
                "freed",
                static_cast<unsigned long long>(packs_deleted),
                static_cast<unsigned long long>(packs_rewritten),
                static_cast<unsigned long long>(chunks_moved),
                static_cast<double>(bytes_freed) / (1 << 20));
  std::string out = buf;
  if (packs_skipped > 0) {
    out += "; " + std::to_string(packs_skipped) +
           " pack(s) with a damaged record left as they are (run `sparetime verify`)";
  }
  if (!stopped.ok()) {
    out += "; then the disk filled up and the repack stopped (" + stopped.message() +
           "): what it freed is kept; free some space and run `sparetime prune` again to "
           "repack the rest";
  }
  return out;
}

}  // namespace sparetime
