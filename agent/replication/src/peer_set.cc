// PeerSet: placement, the pending-upload table and failover, reads with
// replica fallback, Locate and Repair (see peer_set.h).
#include "sparetime/replication/peer_set.h"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "peer_link.h"
#include "sparetime/replication/placement.h"
#include "sparetime/transport/messages.h"

namespace sparetime::replication {
namespace {

// One chunk on its way to its replicas.
struct Pending {
  std::shared_ptr<const std::vector<std::byte>> sealed;
  BlobHash hash{};
  std::vector<size_t> ranking;  // link indices, best first
  size_t next = 0;              // next ranking entry to try after a failure
  size_t want = 0;              // replicas still wanted in total
  size_t outstanding = 0;       // uploads queued or in flight
  std::set<size_t> tried;       // links sent to (or holding it already)
  std::vector<std::string> acked;
  std::string errors;
};

// Asks `link` (in batches of kMaxIdsPerBatch) which of `ids` it holds for
// `owner` and calls `held` for each one it does; stops at the first failed
// batch, whose error it returns (earlier batches' answers are kept).
Status ForEachHeld(PeerLink& link, const std::string& owner, std::span<const ChunkId> ids,
                   const std::function<void(const ChunkId&)>& held) {
  for (size_t start = 0; start < ids.size(); start += transport::kMaxIdsPerBatch) {
    auto slice = ids.subspan(start, std::min<size_t>(transport::kMaxIdsPerBatch, ids.size() - start));
    ST_ASSIGN_OR_RETURN(std::vector<bool> present, link.Has(owner, slice));
    for (size_t i = 0; i < slice.size(); ++i) {
      if (present[i]) held(slice[i]);
    }
  }
  return Status::Ok();
}

}  // namespace

class PeerSet::Impl {
 public:
  Impl(const transport::Identity& identity, ChunkLocations& locations, PeerSetOptions options)
      : identity_(identity), locations_(locations), options_(std::move(options)) {
    if (options_.bandwidth_limit > 0) {
      bucket_ = std::make_unique<TokenBucket>(options_.bandwidth_limit, 0, SystemClock());
    }
  }

  void AddPeers(std::vector<PeerSetPeer> peers) {
    for (PeerSetPeer& p : peers) {
      placement_.push_back({p.endpoint.name, p.site, p.free_bytes});
      links_.push_back(std::make_unique<PeerLink>(
          std::move(p), identity_, options_, bucket_.get(),
          [this](PeerLink& link, const ChunkId& id, const Status& s) { OnDone(link, id, s); }));
    }
  }

  ~Impl() { links_.clear(); }

  PeerLink* LinkByName(const std::string& name) {
    for (auto& l : links_) {
      if (l->name() == name) return l.get();
    }
    return nullptr;
  }
  size_t IndexOf(const PeerLink& link) const {
    for (size_t i = 0; i < links_.size(); ++i) {
      if (links_[i].get() == &link) return i;
    }
    return links_.size();
  }

  Result<bool> Contains(const ChunkId& id) {
    {
      std::lock_guard lock(mu_);
      if (pending_.contains(id) || unflushed_.contains(id)) return true;
    }
    ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> holders, locations_.Holders(id));
    return !holders.empty();
  }

  // Queues `sealed` to `want` more peers than `holders` (which keep theirs).
  Status Place(const ChunkId& id, std::shared_ptr<const std::vector<std::byte>> sealed,
               const std::vector<std::string>& holders, size_t want) {
    std::vector<PeerLink*> targets;
    {
      std::unique_lock lock(mu_);
      if (pending_.contains(id) || (holders.empty() && unflushed_.contains(id))) return Status::Ok();
      space_cv_.wait(lock, [&] {
        return inflight_bytes_ == 0 || inflight_bytes_ + sealed->size() <= options_.max_inflight_bytes;
      });
      Pending p;
      p.hash = HashBlob(*sealed);
      p.sealed = std::move(sealed);
      p.ranking = RankPeers(id, placement_, options_.replicas);
      p.want = want;
      for (const std::string& h : holders) {
        if (PeerLink* l = LinkByName(h)) p.tried.insert(IndexOf(*l));
      }
      while (targets.size() < want && p.next < p.ranking.size()) {
        size_t i = p.ranking[p.next++];
        if (p.tried.contains(i) || links_[i]->down()) continue;
        p.tried.insert(i);
        targets.push_back(links_[i].get());
      }
      if (targets.empty()) {
        return Status(ErrorCode::kUnavailable,
                      "no live peer can take chunk " + id.short_hex() + ": " + DownSummary());
      }
      p.outstanding = targets.size();
      inflight_bytes_ += p.sealed->size();
      auto [it, inserted] = pending_.emplace(id, std::move(p));
      for (PeerLink* t : targets) uploads_.push_back({t, Upload{id, it->second.sealed}});
    }
    FlushUploads();
    return Status::Ok();
  }

  // Hands queued uploads to their links outside mu_ (a down link completes
  // them at once, which re-enters OnDone).
  void FlushUploads() {
    while (true) {
      std::pair<PeerLink*, Upload> next;
      {
        std::lock_guard lock(mu_);
        if (uploads_.empty()) return;
        next = std::move(uploads_.front());
        uploads_.pop_front();
      }
      next.first->Enqueue(std::move(next.second));
    }
  }

  void OnDone(PeerLink& link, const ChunkId& id, const Status& status) {
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      Pending& p = it->second;
      p.outstanding--;
      if (status.ok()) {
        p.acked.push_back(link.name());
        acked_rows_.push_back({id, link.name(), p.hash});
        unflushed_.insert(id);
        stats_.chunks_sent++;
        stats_.bytes_sent += p.sealed->size();
      } else {
        p.errors += (p.errors.empty() ? "" : "; ") + link.name() + ": " + status.message();
        // The next candidate that is not down and has not had it yet.
        while (p.next < p.ranking.size()) {
          size_t i = p.ranking[p.next++];
          if (p.tried.contains(i) || links_[i]->down()) continue;
          p.tried.insert(i);
          p.outstanding++;
          uploads_.push_back({links_[i].get(), Upload{id, p.sealed}});
          break;
        }
      }
      if (p.outstanding == 0) {
        if (p.acked.empty()) {
          failures_.push_back("chunk " + id.short_hex() + " (" + p.errors + ")");
        } else if (p.acked.size() < p.want) {
          stats_.under_replicated++;
        }
        inflight_bytes_ -= p.sealed->size();
        pending_.erase(it);
        space_cv_.notify_all();
        if (pending_.empty()) idle_cv_.notify_all();
      }
    }
    FlushUploads();
  }

  Status Flush() {
    std::vector<ChunkLocation> rows;
    std::vector<std::string> failures;
    {
      std::unique_lock lock(mu_);
      idle_cv_.wait(lock, [&] { return pending_.empty(); });
      rows.swap(acked_rows_);
      failures.swap(failures_);
    }
    ST_RETURN_IF_ERROR(locations_.Add(rows));
    {
      std::lock_guard lock(mu_);
      for (const ChunkLocation& row : rows) unflushed_.erase(row.id);
    }
    if (failures.empty()) return Status::Ok();
    return Status(ErrorCode::kUnavailable,
                  std::to_string(failures.size()) + " chunk(s) could not be stored on any peer, "
                  "first " + failures.front() +
                  "; check the peers with `sparetime peers --probe` and run the backup again "
                  "(it resumes)");
  }

  std::string DownSummary() const {  // REQUIRES: mu_ held or links_ stable
    std::string out;
    for (const auto& l : links_) {
      out += (out.empty() ? "" : "; ") + l->name() + (l->down() ? " down (" + l->down_reason() + ")" : " up");
    }
    return out.empty() ? "no peers in the directory" : out;
  }

  void Report(const std::string& line) {
    if (options_.report) options_.report(line);
  }

  Result<std::vector<std::byte>> Get(const ChunkId& id) {
    ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> holders, locations_.Holders(id));
    bool hashed = !holders.empty();
    if (!hashed) {
      if (!Located(id)) ST_RETURN_IF_ERROR(Locate(std::span(&id, 1)));
      std::lock_guard lock(mu_);
      for (const std::string& peer : located_[id]) holders.push_back({id, peer, {}});
    }
    if (holders.empty()) {
      return Status(ErrorCode::kNotFound,
                    "chunk " + id.short_hex() + " is on none of the live peers (" + DownSummary() + ")");
    }
    // Different chunks start at different replicas.
    std::rotate(holders.begin(), holders.begin() + ChunkIdHash{}(id) % holders.size(), holders.end());
    std::string errors;
    bool damaged = false;
    for (const ChunkLocation& h : holders) {
      PeerLink* link = LinkByName(h.peer);
      Status bad;
      Result<std::vector<std::byte>> blob =
          link != nullptr ? link->Get(options_.owner, id)
                          : Result<std::vector<std::byte>>(Status(
                                ErrorCode::kUnavailable, "not a live peer in the directory"));
      if (blob.ok()) {
        bad = Check(id, h, *blob);
        if (bad.ok()) return blob;
      } else {
        bad = blob.status();
      }
      damaged = damaged || bad.code() == ErrorCode::kCorruption;
      errors += (errors.empty() ? "" : "; ") + h.peer + ": " + bad.message();
      if (bad.code() != ErrorCode::kUnavailable) {
        std::lock_guard lock(mu_);
        stats_.bad_replicas++;
      }
      Report("chunk " + id.short_hex() + ": replica on " + h.peer + " skipped (" + bad.message() + ")");
    }
    return Status(damaged ? ErrorCode::kCorruption : ErrorCode::kNotFound,
                  "chunk " + id.short_hex() + ": no replica could be read (" + errors + ")");
  }

  // A fetched blob against the record. A peer keeps the first copy of a
  // chunk it was given; the owner may have sealed the same chunk again since
  // (a wiped state directory, a re-sent upload), so a hash that differs from
  // the record is not yet damage: the AEAD (`verify`) decides, and a good
  // copy's hash replaces the stale record.
  Status Check(const ChunkId& id, const ChunkLocation& record, std::span<const std::byte> blob) {
    const bool recorded = record.hash != BlobHash{};
    BlobHash got = HashBlob(blob);
    if (recorded && got == record.hash) return Status::Ok();
    if (!options_.verify) {
      return recorded ? Corruption("its copy does not match the hash recorded at backup") : Status::Ok();
    }
    Status verified = options_.verify(id, blob);
    if (!verified.ok()) {
      return Corruption("its copy fails authentication (" + verified.message() + ")");
    }
    if (recorded) {
      ChunkLocation fixed{id, record.peer, got};
      locations_.Add(std::span(&fixed, 1)).IgnoreError();  // a stale record only costs a re-check
    }
    return Status::Ok();
  }

  bool Located(const ChunkId& id) {
    std::lock_guard lock(mu_);
    return located_.contains(id);
  }

  Status Locate(std::span<const ChunkId> requested) {
    std::vector<ChunkId> ids;  // the ones with no location record, each once
    std::unordered_set<ChunkId, ChunkIdHash> seen;
    for (const ChunkId& id : requested) {
      if (id.is_hole() || !seen.insert(id).second) continue;
      ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> holders, locations_.Holders(id));
      if (holders.empty()) ids.push_back(id);
    }
    std::vector<std::thread> threads;
    std::mutex result_mu;
    std::unordered_map<ChunkId, std::vector<std::string>, ChunkIdHash> found;
    for (auto& link : links_) {
      if (link->down()) continue;
      threads.emplace_back([&, l = link.get()] {
        Status asked = ForEachHeld(*l, options_.owner, ids, [&](const ChunkId& id) {
          std::lock_guard lock(result_mu);
          found[id].push_back(l->name());
        });
        if (!asked.ok()) {
          Report("could not ask " + l->name() + " which chunks it holds: " + asked.message());
        }
      });
    }
    for (auto& t : threads) t.join();
    std::lock_guard lock(mu_);
    for (const ChunkId& id : ids) located_[id] = found[id];
    return Status::Ok();
  }

  Result<RepairReport> Repair();
  Result<uint64_t> Release(std::span<const ChunkId> ids);
  // Releases `ids` on one holder; returns the bytes its usage dropped by.
  Result<uint64_t> ReleaseOn(const std::string& peer, const std::vector<ChunkId>& ids);

  uint64_t ChunksSent() const {
    std::lock_guard lock(mu_);
    return stats_.chunks_sent;
  }

  const transport::Identity& identity_;
  ChunkLocations& locations_;
  PeerSetOptions options_;
  std::unique_ptr<TokenBucket> bucket_;
  std::vector<PlacementPeer> placement_;
  std::vector<std::unique_ptr<PeerLink>> links_;

  mutable std::mutex mu_;
  std::condition_variable space_cv_, idle_cv_;
  std::unordered_map<ChunkId, Pending, ChunkIdHash> pending_;  // guarded by mu_
  std::deque<std::pair<PeerLink*, Upload>> uploads_;            // guarded by mu_
  size_t inflight_bytes_ = 0;                                   // guarded by mu_
  std::vector<ChunkLocation> acked_rows_;                       // guarded by mu_
  std::unordered_set<ChunkId, ChunkIdHash> unflushed_;          // ids in acked_rows_; guarded by mu_
  std::vector<std::string> failures_;                           // guarded by mu_
  std::unordered_map<ChunkId, std::vector<std::string>, ChunkIdHash> located_;  // guarded by mu_
  PeerSetStats stats_;                                          // guarded by mu_
};

Result<PeerSet::RepairReport> PeerSet::Impl::Repair() {
  ST_RETURN_IF_ERROR(Flush());
  ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> rows, locations_.All());
  // What each live holder really has.
  std::map<std::string, std::vector<ChunkId>> recorded;
  for (const ChunkLocation& r : rows) recorded[r.peer].push_back(r.id);
  std::set<std::pair<ChunkId, std::string>> verified;
  for (auto& [peer, ids] : recorded) {
    PeerLink* link = LinkByName(peer);
    if (link == nullptr || link->down()) continue;
    // A holder that fails part-way keeps what it confirmed before.
    ForEachHeld(*link, "", ids, [&](const ChunkId& id) { verified.insert({id, peer}); })
        .IgnoreError();
  }
  RepairReport report;
  for (size_t i = 0; i < rows.size();) {
    const ChunkId id = rows[i].id;
    std::vector<ChunkLocation> good;
    for (; i < rows.size() && rows[i].id == id; ++i) {
      PeerLink* link = LinkByName(rows[i].peer);
      if (verified.contains({id, rows[i].peer})) {
        good.push_back(rows[i]);
      } else if (link != nullptr && !link->down()) {
        // A live peer that no longer has it: the record is wrong.
        ST_RETURN_IF_ERROR(locations_.Remove(id, rows[i].peer));
        report.dropped++;
      }
    }
    report.chunks++;
    if (good.size() >= options_.replicas) continue;
    std::shared_ptr<const std::vector<std::byte>> sealed;
    for (const ChunkLocation& g : good) {
      Result<std::vector<std::byte>> blob = LinkByName(g.peer)->Get("", id);
      if (blob.ok() && Check(id, g, *blob).ok()) {
        sealed = std::make_shared<const std::vector<std::byte>>(std::move(*blob));
        break;
      }
    }
    if (sealed == nullptr) {
      report.lost++;
      Report("chunk " + id.short_hex() + ": no live peer holds a good copy; it cannot be repaired");
      continue;
    }
    std::vector<std::string> holders;
    for (const ChunkLocation& g : good) holders.push_back(g.peer);
    uint64_t before = ChunksSent();
    if (Place(id, sealed, holders, options_.replicas - good.size()).ok()) {
      ST_RETURN_IF_ERROR(Flush());
      report.copied += ChunksSent() - before;
    }
  }
  ST_RETURN_IF_ERROR(Flush());
  return report;
}

// A holder that is away or refuses keeps its rows (reported, counted in
// stats_.unreleased); only a failure to update locations.db is an error.
Result<uint64_t> PeerSet::Impl::ReleaseOn(const std::string& peer,
                                           const std::vector<ChunkId>& ids) {
  PeerLink* link = LinkByName(peer);
  Result<transport::StatsReply> before =
      link != nullptr ? link->Stats()
                      : Result<transport::StatsReply>(Unavailable("not a live peer in the directory"));
  std::vector<ChunkId> released;
  Status failed = before.status();
  for (size_t start = 0; start < ids.size() && failed.ok(); start += transport::kMaxIdsPerBatch) {
    const size_t n = std::min<size_t>(transport::kMaxIdsPerBatch, ids.size() - start);
    std::vector<ChunkId> batch(ids.begin() + start, ids.begin() + start + n);
    failed = link->Release(batch).status();
    if (failed.ok()) released.insert(released.end(), batch.begin(), batch.end());
  }
  ST_RETURN_IF_ERROR(locations_.RemoveMany(released, peer));
  if (!failed.ok()) {
    Report("peer " + peer + " did not confirm releasing " +
           std::to_string(ids.size() - released.size()) + " chunk(s) (" + failed.message() +
           "); they stay recorded and the next prune releases them");
    std::lock_guard lock(mu_);
    stats_.unreleased += ids.size() - released.size();
    return uint64_t{0};
  }
  Result<transport::StatsReply> after = link->Stats();
  if (!after.ok() || after->used_bytes > before->used_bytes) return uint64_t{0};
  return before->used_bytes - after->used_bytes;
}

Result<uint64_t> PeerSet::Impl::Release(std::span<const ChunkId> ids) {
  if (!options_.owner.empty()) {
    return FailedPrecondition("the chunks of " + options_.owner + " are read only from this host");
  }
  std::map<std::string, std::vector<ChunkId>> by_peer;
  for (const ChunkId& id : ids) {
    ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> holders, locations_.Holders(id));
    for (const ChunkLocation& h : holders) by_peer[h.peer].push_back(id);
  }
  std::vector<Result<uint64_t>> results(by_peer.size(), Result<uint64_t>(uint64_t{0}));
  std::vector<std::thread> threads;
  size_t i = 0;
  for (const auto& [peer, peer_ids] : by_peer) {
    threads.emplace_back([this, &out = results[i++], &peer = peer, &peer_ids = peer_ids] {
      out = ReleaseOn(peer, peer_ids);
    });
  }
  for (auto& t : threads) t.join();
  uint64_t bytes = 0;
  for (const Result<uint64_t>& r : results) {
    ST_RETURN_IF_ERROR(r.status());
    bytes += *r;
  }
  return bytes;
}

PeerSet::PeerSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerSet::~PeerSet() = default;

Result<std::unique_ptr<PeerSet>> PeerSet::Open(const transport::Identity& identity,
                                               std::vector<PeerSetPeer> peers,
                                               ChunkLocations& locations, PeerSetOptions options) {
  if (options.replicas == 0) return InvalidArgument("replicas must be at least 1");
  auto impl = std::make_unique<Impl>(identity, locations, std::move(options));
  impl->AddPeers(std::move(peers));
  return std::unique_ptr<PeerSet>(new PeerSet(std::move(impl)));
}

Result<bool> PeerSet::Contains(const ChunkId& id) { return impl_->Contains(id); }

Result<bool> PeerSet::Put(const ChunkId& id, std::span<const std::byte> sealed) {
  if (!impl_->options_.owner.empty()) {
    return Status(ErrorCode::kFailedPrecondition,
                  "the chunks of " + impl_->options_.owner + " are read only from this host");
  }
  ST_ASSIGN_OR_RETURN(bool held, impl_->Contains(id));
  if (held) return true;
  ST_RETURN_IF_ERROR(impl_->Place(id, std::make_shared<const std::vector<std::byte>>(sealed.begin(), sealed.end()),
                                  {}, impl_->options_.replicas));
  return false;
}

Status PeerSet::Flush() { return impl_->Flush(); }
Result<std::vector<std::byte>> PeerSet::Get(const ChunkId& id) { return impl_->Get(id); }
Status PeerSet::Locate(std::span<const ChunkId> ids) { return impl_->Locate(ids); }
Result<PeerSet::RepairReport> PeerSet::Repair() { return impl_->Repair(); }

Result<std::vector<StoredChunk>> PeerSet::ListStored() {
  ST_RETURN_IF_ERROR(impl_->Flush());
  ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> rows, impl_->locations_.All());
  std::vector<StoredChunk> out;
  for (const ChunkLocation& r : rows) {  // ordered by id
    if (out.empty() || !(out.back().id == r.id)) out.push_back({r.id, 0});
  }
  return out;
}

Result<uint64_t> PeerSet::RemoveStored(std::span<const ChunkId> ids) { return impl_->Release(ids); }

PeerSetStats PeerSet::stats() const {
  PeerSetStats s;
  {
    std::lock_guard lock(impl_->mu_);
    s = impl_->stats_;
  }
  for (const auto& l : impl_->links_) {
    if (l->down()) s.peers_down.push_back(l->name() + ": " + l->down_reason());
  }
  return s;
}

std::vector<std::string> PeerSet::peer_names() const {
  std::vector<std::string> names;
  for (const auto& l : impl_->links_) names.push_back(l->name());
  return names;
}

}  // namespace sparetime::replication
