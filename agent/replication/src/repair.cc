// RepairReplicas (verify holders, drop stale rows, copy under-replicated
// chunks behind one flush) and ReleaseChunks (prune) — see repair.h.
#include "repair.h"

#include <functional>
#include <map>
#include <set>

#include "sparetime/transport/messages.h"

namespace sparetime::replication {
namespace {

void Report(const PeerSetOptions& options, const std::string& line) {
  if (options.report) options.report(line);
}

// The (chunk, peer) pairs of `rows` that live holders confirm having.
std::set<std::pair<ChunkId, std::string>> VerifiedHolders(const ReplicaTools& t,
                                                          const std::vector<ChunkLocation>& rows) {
  std::map<std::string, std::vector<ChunkId>> recorded;
  for (const ChunkLocation& r : rows) recorded[r.peer].push_back(r.id);
  Mutex mu;
  std::set<std::pair<ChunkId, std::string>> verified;  // guarded by mu
  std::vector<std::function<void()>> asks;
  for (const auto& [peer, ids] : recorded) {
    PeerLink* link = t.links.Find(peer);
    if (link == nullptr || link->down()) continue;
    asks.push_back([&, link, &peer = peer, &ids = ids] {
      // A holder that fails part-way keeps what it confirmed before.
      ForEachHeld(*link, "", ids, [&](const ChunkId& id) {
        MutexLock lock(mu);
        verified.insert({id, peer});
      }).IgnoreError();
    });
  }
  t.pool.RunAll(std::move(asks));
  return verified;
}

// Releases `ids` on one holder; returns the bytes its usage dropped by.
Result<uint64_t> ReleaseOn(const ReplicaTools& t, const std::string& peer,
                           const std::vector<ChunkId>& ids, std::atomic<uint64_t>& unreleased) {
  PeerLink* link = t.links.Find(peer);
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
  ST_RETURN_IF_ERROR(t.locations.RemoveMany(released, peer));
  if (!failed.ok()) {
    Report(t.options, "peer " + peer + " did not confirm releasing " +
                          std::to_string(ids.size() - released.size()) + " chunk(s) (" +
                          failed.message() + "); they stay recorded and the next prune releases them");
    unreleased += ids.size() - released.size();
    return uint64_t{0};
  }
  Result<transport::StatsReply> after = link->Stats();
  if (!after.ok() || after->used_bytes > before->used_bytes) return uint64_t{0};
  return before->used_bytes - after->used_bytes;
}

// Holders the owner did not record (a caretaker copied chunks while the
// owner was gone, docs/peers.md "Caretaker"): asks every live peer that is
// not a verified holder of an under-replicated chunk whether it has it, and
// records those that do with the recorded hash — a caretaker copies the
// sealed blob byte for byte, and a read still checks it (a differing blob
// is checked with the AEAD, replica_reader.h). Returns how many were added.
Result<uint64_t> LearnHolders(const ReplicaTools& t, const std::vector<ChunkLocation>& rows,
                              std::set<std::pair<ChunkId, std::string>>& verified) {
  std::map<ChunkId, size_t> good;  // verified holders per chunk
  std::map<ChunkId, BlobHash> hash;
  for (const ChunkLocation& r : rows) {
    // Any recorded row's hash: every replica of a chunk the owner sent is
    // the same blob unless it re-sealed it (then the AEAD decides on read).
    hash.try_emplace(r.id, r.hash);
    good[r.id] += verified.contains({r.id, r.peer}) ? 1 : 0;
  }
  std::vector<ChunkId> short_ids;
  for (const auto& [id, n] : good) {
    if (n < t.options.replicas) short_ids.push_back(id);
  }
  if (short_ids.empty()) return uint64_t{0};
  Mutex mu;
  std::vector<ChunkLocation> found;  // guarded by mu
  std::vector<std::function<void()>> asks;
  for (size_t i = 0; i < t.links.size(); ++i) {
    PeerLink* link = &t.links.at(i);
    if (link->down()) continue;
    asks.push_back([&, link] {
      ForEachHeld(*link, "", short_ids, [&](const ChunkId& id) {
        MutexLock lock(mu);
        if (!verified.contains({id, link->name()})) found.push_back({id, link->name(), hash[id]});
      }).IgnoreError();
    });
  }
  t.pool.RunAll(std::move(asks));
  if (found.empty()) return uint64_t{0};
  ST_RETURN_IF_ERROR(t.locations.Add(found));
  for (const ChunkLocation& f : found) verified.insert({f.id, f.peer});
  return uint64_t{found.size()};
}

}  // namespace

Result<PeerSet::RepairReport> RepairReplicas(const ReplicaTools& t) {
  ST_RETURN_IF_ERROR(t.uploads.Flush());
  ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> rows, t.locations.All());  // ordered by id
  std::set<std::pair<ChunkId, std::string>> verified = VerifiedHolders(t, rows);
  PeerSet::RepairReport report;
  ST_ASSIGN_OR_RETURN(report.learned, LearnHolders(t, rows, verified));
  if (report.learned > 0) {
    ST_ASSIGN_OR_RETURN(rows, t.locations.All());  // with the learned holders
  }
  std::map<std::string, std::vector<ChunkId>> stale;  // rows of live peers that lost the chunk
  const uint64_t sent_before = t.uploads.counters().chunks_sent;
  for (size_t i = 0; i < rows.size();) {
    const ChunkId id = rows[i].id;
    std::vector<ChunkLocation> good;
    for (; i < rows.size() && rows[i].id == id; ++i) {
      PeerLink* link = t.links.Find(rows[i].peer);
      if (verified.contains({id, rows[i].peer})) {
        good.push_back(rows[i]);
      } else if (link != nullptr && !link->down()) {
        stale[rows[i].peer].push_back(id);
      }
    }
    report.chunks++;
    if (good.size() >= t.options.replicas) continue;
    std::shared_ptr<const std::vector<std::byte>> sealed;
    for (const ChunkLocation& g : good) {
      Result<std::vector<std::byte>> blob = t.reader.ReadFrom(g, "");
      if (blob.ok()) {
        sealed = std::make_shared<const std::vector<std::byte>>(std::move(*blob));
        break;
      }
    }
    if (sealed == nullptr) {
      report.lost++;
      Report(t.options, "chunk " + id.short_hex() + ": no live peer holds a good copy; it cannot be repaired");
      continue;
    }
    std::vector<std::string> holders;
    for (const ChunkLocation& g : good) holders.push_back(g.peer);
    Result<bool> queued = t.uploads.Queue(id, std::move(sealed), holders, t.options.replicas - good.size());
    if (!queued.ok()) {
      Report(t.options, "chunk " + id.short_hex() + " stays under-replicated: " + queued.status().message());
    }
  }
  for (const auto& [peer, ids] : stale) {
    ST_RETURN_IF_ERROR(t.locations.RemoveMany(ids, peer));
    report.dropped += ids.size();
  }
  t.uploads.Dispatch();
  ST_RETURN_IF_ERROR(t.uploads.Flush());
  report.copied = t.uploads.counters().chunks_sent - sent_before;
  return report;
}

Result<uint64_t> ReleaseChunks(const ReplicaTools& t, std::span<const ChunkId> ids,
                               std::atomic<uint64_t>& unreleased) {
  std::map<std::string, std::vector<ChunkId>> by_peer;
  for (const ChunkId& id : ids) {
    ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> holders, t.locations.Holders(id));
    for (const ChunkLocation& h : holders) by_peer[h.peer].push_back(id);
  }
  std::vector<Result<uint64_t>> results(by_peer.size(), Result<uint64_t>(uint64_t{0}));
  std::vector<std::function<void()>> releases;
  size_t i = 0;
  for (const auto& [peer, peer_ids] : by_peer) {
    releases.push_back([&t, &unreleased, &out = results[i++], &peer = peer, &peer_ids = peer_ids] {
      out = ReleaseOn(t, peer, peer_ids, unreleased);
    });
  }
  t.pool.RunAll(std::move(releases));
  uint64_t bytes = 0;
  for (const Result<uint64_t>& r : results) {
    ST_RETURN_IF_ERROR(r.status());
    bytes += *r;
  }
  return bytes;
}

}  // namespace sparetime::replication
