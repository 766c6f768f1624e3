// UploadQueue: pending uploads, one next-candidate rule for first targets
// and failover, dispatch per link, Flush into ChunkLocations (see
// upload_queue.h).
#include "upload_queue.h"

#include <utility>

#include "sparetime/replication/placement.h"

namespace sparetime::replication {

bool UploadQueue::Holds(const ChunkId& id) const {
  MutexLock lock(mu_);
  return pending_.contains(id) || unflushed_.contains(id);
}

bool UploadQueue::AlreadyQueued(const ChunkId& id, const std::vector<std::string>& holders) const {
  return pending_.contains(id) || (holders.empty() && unflushed_.contains(id));
}

bool UploadQueue::HasRoom(size_t bytes) const {
  return inflight_bytes_ == 0 || inflight_bytes_ + bytes <= options_.max_inflight_bytes;
}

PeerLink* UploadQueue::NextCandidate(Pending& p) {
  while (p.next < p.ranking.size()) {
    size_t i = p.ranking[p.next++];
    if (p.tried.contains(i) || links_.at(i).down()) continue;
    p.tried.insert(i);
    return &links_.at(i);
  }
  return nullptr;
}

Result<bool> UploadQueue::Place(const ChunkId& id, std::shared_ptr<const std::vector<std::byte>> sealed,
                                const std::vector<std::string>& holders, size_t want) {
  Result<bool> queued = Queue(id, std::move(sealed), holders, want);
  Dispatch();
  return queued;
}

Result<bool> UploadQueue::Queue(const ChunkId& id, std::shared_ptr<const std::vector<std::byte>> sealed,
                                const std::vector<std::string>& holders, size_t want) {
  while (true) {
    {
      MutexLock lock(mu_);
      if (AlreadyQueued(id, holders)) return false;
      if (!HasRoom(sealed->size()) && uploads_.empty()) {
        lock.Wait(space_cv_, [&]() REQUIRES(mu_) { return HasRoom(sealed->size()); });
        if (AlreadyQueued(id, holders)) return false;
      }
      if (HasRoom(sealed->size())) {
        Pending p;
        p.hash = HashBlob(*sealed);
        p.sealed = std::move(sealed);
        p.ranking = RankPeers(id, links_.placement(), options_.replicas);
        p.want = want;
        p.held_elsewhere = !holders.empty();
        for (const std::string& h : holders) {
          if (PeerLink* l = links_.Find(h)) p.tried.insert(links_.IndexOf(*l));
        }
        std::vector<PeerLink*> targets;
        while (targets.size() < want) {
          PeerLink* next = NextCandidate(p);
          if (next == nullptr) break;
          targets.push_back(next);
        }
        if (targets.empty()) {
          return Status(ErrorCode::kUnavailable, "no live peer can take chunk " + id.short_hex() +
                                                     ": " + links_.Summary());
        }
        p.outstanding = targets.size();
        inflight_bytes_ += p.sealed->size();
        auto [it, inserted] = pending_.emplace(id, std::move(p));
        for (PeerLink* t : targets) uploads_.push_back({t, Upload{id, it->second.sealed}});
        return true;
      }
    }
    // No room, and uploads chosen but not handed over: they must move
    // before anything can complete.
    Dispatch();
  }
}

void UploadQueue::Dispatch() {
  while (true) {
    std::deque<std::pair<PeerLink*, Upload>> taken;
    {
      MutexLock lock(mu_);
      if (uploads_.empty()) return;
      taken.swap(uploads_);
    }
    // Per link, in order of first appearance; a down link completes its
    // uploads at once, which re-enters OnDone (and Dispatch) for failover.
    std::vector<std::pair<PeerLink*, std::vector<Upload>>> by_link;
    for (auto& [link, upload] : taken) {
      auto it = std::find_if(by_link.begin(), by_link.end(),
                             [l = link](const auto& entry) { return entry.first == l; });
      if (it == by_link.end()) it = by_link.insert(by_link.end(), {link, {}});
      it->second.push_back(std::move(upload));
    }
    for (auto& [link, uploads] : by_link) link->EnqueueMany(std::move(uploads));
  }
}

void UploadQueue::OnDone(PeerLink& link, const ChunkId& id, const Status& status) {
  {
    MutexLock lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Pending& p = it->second;
    p.outstanding--;
    if (status.ok()) {
      p.acked.push_back(link.name());
      acked_rows_.push_back({id, link.name(), p.hash});
      unflushed_.insert(id);
      counters_.chunks_sent++;
      counters_.bytes_sent += p.sealed->size();
    } else {
      p.errors += (p.errors.empty() ? "" : "; ") + link.name() + ": " + status.message();
      if (PeerLink* next = NextCandidate(p)) {
        p.outstanding++;
        uploads_.push_back({next, Upload{id, p.sealed}});
      }
    }
    if (p.outstanding == 0) {
      if (p.acked.empty() && !p.held_elsewhere) {
        failures_.push_back("chunk " + id.short_hex() + " (" + p.errors + ")");
      } else if (p.acked.size() < p.want) {
        counters_.under_replicated++;
      }
      inflight_bytes_ -= p.sealed->size();
      pending_.erase(it);
      space_cv_.notify_all();
      if (pending_.empty()) idle_cv_.notify_all();
    }
  }
  Dispatch();
}

Status UploadQueue::Flush() {
  Dispatch();
  std::vector<ChunkLocation> rows;
  std::vector<std::string> failures;
  {
    MutexLock lock(mu_);
    lock.Wait(idle_cv_, [&]() REQUIRES(mu_) { return pending_.empty(); });
    rows.swap(acked_rows_);
    failures.swap(failures_);
  }
  ST_RETURN_IF_ERROR(locations_.Add(rows));
  {
    MutexLock lock(mu_);
    for (const ChunkLocation& row : rows) unflushed_.erase(row.id);
  }
  if (failures.empty()) return Status::Ok();
  return Status(ErrorCode::kUnavailable,
                std::to_string(failures.size()) + " chunk(s) could not be stored on any peer, "
                "first " + failures.front() +
                "; check the peers with `sparetime peers --probe` and run the backup again "
                "(it resumes)");
}

UploadQueue::Counters UploadQueue::counters() const {
  MutexLock lock(mu_);
  return counters_;
}

}  // namespace sparetime::replication
