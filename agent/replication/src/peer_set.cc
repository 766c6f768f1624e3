// PeerSet: the façade over the upload queue (write side), the replica
// reader (read side, Locate) and repair/release (functions over the chunk
// locations), sharing one set of peer links and one worker pool. The only
// place that decides whether this set may write (see peer_set.h).
#include "sparetime/replication/peer_set.h"

#include <algorithm>
#include <atomic>
#include <map>

#include "peer_link.h"
#include "repair.h"
#include "replica_reader.h"
#include "upload_queue.h"

namespace sparetime::replication {

class PeerSet::Impl {
 public:
  Impl(const transport::Identity& identity, std::vector<PeerSetPeer> peers,
       ChunkLocations& locations, PeerSetOptions options)
      : options_(std::move(options)),
        bucket_(options_.bandwidth_limit > 0
                    ? std::make_unique<TokenBucket>(options_.bandwidth_limit, 0, SystemClock())
                    : nullptr),
        pool_(options_.workers),
        locations_(locations),
        // The links report completions to uploads_, declared after them:
        // the destructor stops every link before uploads_ goes.
        links_(std::move(peers), identity, options_, bucket_.get(),
               [this](PeerLink& link, const ChunkId& id, const Status& s) { uploads_.OnDone(link, id, s); }),
        uploads_(links_, locations, options_),
        reader_(links_, locations, options_, pool_),
        tools_{links_, locations, uploads_, reader_, pool_, options_} {}

  ~Impl() { links_.StopAll(); }

  Result<bool> Held(const ChunkId& id, std::vector<std::string>* holders);

  // The one read-only check: another owner's chunks are never written.
  Status Writable() const {
    if (options_.owner.empty()) return Status::Ok();
    return FailedPrecondition("the chunks of " + options_.owner +
                              " are read only from this host; write to them from " +
                              options_.owner + " itself");
  }

  const PeerSetOptions options_;
  std::unique_ptr<TokenBucket> bucket_;
  WorkerPool pool_;
  ChunkLocations& locations_;
  PeerLinks links_;
  UploadQueue uploads_;
  ReplicaReader reader_;
  const ReplicaTools tools_;
  std::atomic<uint64_t> unreleased_{0};
};

PeerSet::PeerSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerSet::~PeerSet() = default;

Result<std::unique_ptr<PeerSet>> PeerSet::Open(const transport::Identity& identity,
                                               std::vector<PeerSetPeer> peers,
                                               ChunkLocations& locations, PeerSetOptions options) {
  if (options.replicas == 0) return InvalidArgument("replicas must be at least 1");
  auto impl = std::make_unique<Impl>(identity, std::move(peers), locations, std::move(options));
  return std::unique_ptr<PeerSet>(new PeerSet(std::move(impl)));
}

// Held: queued, or recorded on `replicas` peers, or on fewer while no live
// peer without it is left (a re-send could go nowhere). Not held: the
// recorded holders (`holders`) keep theirs and a Put adds the rest.
Result<bool> PeerSet::Impl::Held(const ChunkId& id, std::vector<std::string>* holders) {
  if (uploads_.Holds(id)) return true;
  ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> rows, locations_.Holders(id));
  if (rows.size() >= options_.replicas) return true;
  if (!rows.empty() && !options_.owner.empty()) return true;  // read only: never re-sent
  std::vector<std::string> names;
  for (const ChunkLocation& r : rows) names.push_back(r.peer);
  bool spare = false;
  for (size_t i = 0; i < links_.size() && !spare; ++i) {
    const PeerLink& l = links_.at(i);
    spare = !l.down() && std::find(names.begin(), names.end(), l.name()) == names.end();
  }
  if (!rows.empty() && !spare) return true;
  if (holders != nullptr) *holders = std::move(names);
  return false;
}

Result<bool> PeerSet::Contains(const ChunkId& id) { return impl_->Held(id, nullptr); }

Result<bool> PeerSet::Put(const ChunkId& id, std::span<const std::byte> sealed) {
  ST_RETURN_IF_ERROR(impl_->Writable());
  std::vector<std::string> holders;
  ST_ASSIGN_OR_RETURN(bool held, impl_->Held(id, &holders));
  if (held) return true;
  const size_t want = impl_->options_.replicas - holders.size();
  Result<bool> queued = impl_->uploads_.Place(
      id, std::make_shared<const std::vector<std::byte>>(sealed.begin(), sealed.end()), holders,
      want);
  // A re-send no live peer can take: the holders still have it.
  if (!queued.ok() && queued.status().code() == ErrorCode::kUnavailable && !holders.empty()) {
    return true;
  }
  ST_RETURN_IF_ERROR(queued.status());
  return !*queued;  // another caller queued it first
}

void PeerSet::CheckEveryReplica(bool on) { impl_->reader_.set_check_every(on); }

Result<std::vector<DamagedReplica>> PeerSet::DropDamagedReplicas() {
  std::vector<DamagedReplica> found = impl_->reader_.TakeDamaged();
  if (found.empty() || !impl_->Writable().ok()) return found;
  std::map<std::string, std::vector<ChunkId>> rows, release;
  for (const DamagedReplica& d : found) {
    rows[d.peer].push_back(d.id);
    if (d.damaged) release[d.peer].push_back(d.id);
  }
  for (const auto& [peer, ids] : rows) ST_RETURN_IF_ERROR(impl_->locations_.RemoveMany(ids, peer));
  for (auto& [peer, ids] : release) {
    PeerLink* link = impl_->links_.Find(peer);
    Status told = link == nullptr ? Unavailable("not a live peer in the directory")
                                  : link->Release(ids).status();
    if (!told.ok() && impl_->options_.report) {
      impl_->options_.report("peer " + peer + " was not told to drop " + std::to_string(ids.size()) +
                             " damaged chunk(s) (" + told.message() +
                             "); it drops them at its own next check of them");
    }
  }
  return found;
}

Status PeerSet::Flush() { return impl_->uploads_.Flush(); }
Result<std::vector<std::byte>> PeerSet::Get(const ChunkId& id) { return impl_->reader_.Get(id); }
Status PeerSet::Locate(std::span<const ChunkId> ids) { return impl_->reader_.Locate(ids); }

Result<PeerSet::RepairReport> PeerSet::Repair() {
  ST_RETURN_IF_ERROR(impl_->Writable());
  return RepairReplicas(impl_->tools_);
}

Result<std::vector<StoredChunk>> PeerSet::ListStored() {
  ST_RETURN_IF_ERROR(impl_->uploads_.Flush());
  ST_ASSIGN_OR_RETURN(std::vector<ChunkLocation> rows, impl_->locations_.All());
  std::vector<StoredChunk> out;
  for (const ChunkLocation& r : rows) {  // ordered by id
    if (out.empty() || !(out.back().id == r.id)) out.push_back({r.id, 0});
  }
  return out;
}

Result<uint64_t> PeerSet::RemoveStored(std::span<const ChunkId> ids) {
  ST_RETURN_IF_ERROR(impl_->Writable());
  return ReleaseChunks(impl_->tools_, ids, impl_->unreleased_);
}

std::vector<std::pair<std::string, Status>> PeerSet::HoldSnapshot(const std::string& snapshot,
                                                                  uint32_t seconds) {
  std::vector<std::pair<std::string, Status>> results;
  for (size_t i = 0; i < impl_->links_.size(); ++i) {
    if (!impl_->links_.at(i).down()) results.emplace_back(impl_->links_.at(i).name(), Status::Ok());
  }
  std::vector<std::function<void()>> asks;
  for (auto& [name, status] : results) {
    asks.push_back([this, &name = name, &status = status, &snapshot, seconds] {
      status = impl_->links_.Find(name)->Hold(impl_->options_.owner, snapshot, seconds);
    });
  }
  impl_->pool_.RunAll(std::move(asks));
  return results;
}

PeerSetStats PeerSet::stats() const {
  PeerSetStats s;
  UploadQueue::Counters c = impl_->uploads_.counters();
  s.chunks_sent = c.chunks_sent;
  s.bytes_sent = c.bytes_sent;
  s.under_replicated = c.under_replicated;
  s.bad_replicas = impl_->reader_.bad_replicas();
  s.unreleased = impl_->unreleased_.load();
  for (size_t i = 0; i < impl_->links_.size(); ++i) {
    const PeerLink& l = impl_->links_.at(i);
    if (l.down()) s.peers_down.push_back(l.name() + ": " + l.down_reason());
  }
  return s;
}

std::vector<std::string> PeerSet::peer_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < impl_->links_.size(); ++i) names.push_back(impl_->links_.at(i).name());
  return names;
}

}  // namespace sparetime::replication
