// ReplicaReader: reads with replica fallback and checks, and Locate over
// the worker pool (see replica_reader.h).
#include "replica_reader.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <unordered_set>

namespace sparetime::replication {

Result<std::vector<std::byte>> ReplicaReader::Get(const ChunkId& id) {
  ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> holders, locations_.Holders(id));
  if (holders.empty()) {
    bool located;
    {
      MutexLock lock(mu_);
      located = located_.contains(id);
    }
    if (!located) ST_RETURN_IF_ERROR(Locate(std::span(&id, 1)));
    MutexLock lock(mu_);
    for (const std::string& peer : located_[id]) holders.push_back({id, peer, {}});
  }
  if (holders.empty()) {
    return Status(ErrorCode::kNotFound, "chunk " + id.short_hex() +
                                            " is on none of the live peers (" + links_.Summary() + ")");
  }
  // Different chunks start at different replicas.
  std::rotate(holders.begin(), holders.begin() + ChunkIdHash{}(id) % holders.size(), holders.end());
  bool check_every;
  {
    MutexLock lock(mu_);
    check_every = check_every_;
  }
  std::string errors;
  bool damaged = false;
  std::optional<std::vector<std::byte>> good;
  for (const ChunkLocation& h : holders) {
    Result<std::vector<std::byte>> blob = ReadFrom(h, options_.owner);
    if (blob.ok()) {
      if (!check_every) return blob;
      if (!good) good = std::move(*blob);
      continue;
    }
    const Status& bad = blob.status();
    damaged = damaged || bad.code() == ErrorCode::kCorruption;
    errors += (errors.empty() ? "" : "; ") + h.peer + ": " + bad.message();
    if (bad.code() != ErrorCode::kUnavailable) {
      MutexLock lock(mu_);
      bad_replicas_++;
      if ((bad.code() == ErrorCode::kCorruption || bad.code() == ErrorCode::kNotFound) &&
          damaged_seen_.insert({id, h.peer}).second) {
        damaged_.push_back({id, h.peer, bad.code() == ErrorCode::kCorruption, bad.message()});
      }
    }
    Report("chunk " + id.short_hex() + ": replica on " + h.peer + " skipped (" + bad.message() + ")");
  }
  if (good) return std::move(*good);
  return Status(damaged ? ErrorCode::kCorruption : ErrorCode::kNotFound,
                "chunk " + id.short_hex() + ": no replica could be read (" + errors + ")");
}

Result<std::vector<std::byte>> ReplicaReader::ReadFrom(const ChunkLocation& holder,
                                                       const std::string& owner) {
  PeerLink* link = links_.Find(holder.peer);
  if (link == nullptr) return Status(ErrorCode::kUnavailable, "not a live peer in the directory");
  ST_ASSIGN_OR_RETURN(std::vector<std::byte> blob, link->Get(owner, holder.id));
  ST_RETURN_IF_ERROR(Check(holder.id, holder, blob));
  return blob;
}

// A peer keeps the first copy of a chunk it was given; the owner may have
// sealed the same chunk again since (a wiped state directory, a re-sent
// upload), so a hash that differs from the record is not yet damage: the
// AEAD (`verify`) decides, and a good copy's hash replaces the stale record.
Status ReplicaReader::Check(const ChunkId& id, const ChunkLocation& record,
                            std::span<const std::byte> blob) {
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

Status ReplicaReader::Locate(std::span<const ChunkId> requested) {
  std::vector<ChunkId> ids;  // the ones with no location record, each once
  std::unordered_set<ChunkId, ChunkIdHash> seen;
  for (const ChunkId& id : requested) {
    if (id.is_hole() || !seen.insert(id).second) continue;
    ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> holders, locations_.Holders(id));
    if (holders.empty()) ids.push_back(id);
  }
  Mutex found_mu;
  std::unordered_map<ChunkId, std::vector<std::string>, ChunkIdHash> found;  // guarded by found_mu
  std::vector<std::function<void()>> asks;
  for (size_t i = 0; i < links_.size(); ++i) {
    PeerLink& link = links_.at(i);
    if (link.down()) continue;
    asks.push_back([&] {
      Status asked = ForEachHeld(link, options_.owner, ids, [&](const ChunkId& id) {
        MutexLock lock(found_mu);
        found[id].push_back(link.name());
      });
      if (!asked.ok()) {
        Report("could not ask " + link.name() + " which chunks it holds: " + asked.message());
      }
    });
  }
  pool_.RunAll(std::move(asks));
  MutexLock lock(mu_);
  for (const ChunkId& id : ids) {
    auto it = found.find(id);
    located_[id] = it != found.end() ? it->second : std::vector<std::string>{};
  }
  return Status::Ok();
}

void ReplicaReader::set_check_every(bool on) {
  MutexLock lock(mu_);
  check_every_ = on;
}

std::vector<DamagedReplica> ReplicaReader::TakeDamaged() {
  MutexLock lock(mu_);
  std::vector<DamagedReplica> out;
  out.swap(damaged_);
  damaged_seen_.clear();
  return out;
}

uint64_t ReplicaReader::bad_replicas() const {
  MutexLock lock(mu_);
  return bad_replicas_;
}

}  // namespace sparetime::replication
