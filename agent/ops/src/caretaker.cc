// Caretaker: who heals an absent owner's replicas, and the heal itself
// (invariants in ops/caretaker.h).
#include "sparetime/ops/caretaker.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "sparetime/directory/policy.h"
#include "sparetime/peer/peer_client.h"
#include "sparetime/replication/placement.h"

namespace sparetime::ops {
namespace {

namespace dir = sparetime::directory;
using std::chrono::minutes;
using std::chrono::seconds;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The rendezvous key of an owner: BLAKE2b-256("sparetime caretaker" 0 owner),
// ranked over the candidates like a chunk id (placement.h, weight 1 each).
ChunkId OwnerKey(const std::string& owner) {
  static constexpr char kContext[] = "sparetime caretaker";
  const std::string lower = Lower(owner);
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, ChunkId::kSize);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(kContext), sizeof kContext);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(lower.data()), lower.size());
  ChunkId id;
  crypto_generichash_final(&state, reinterpret_cast<unsigned char*>(id.bytes.data()), ChunkId::kSize);
  return id;
}

const dir::AgentRecord* FindAgent(const dir::DirectoryView& view, const std::string& name) {
  for (const dir::AgentRecord& a : view.agents) {
    if (dir::EqualsIgnoreCase(a.name, name)) return &a;
  }
  return nullptr;
}

// The owner's live peers, as the owner's own placement sees them.
std::vector<dir::AgentRecord> OwnersPeers(const dir::DirectoryView& view, const std::string& owner,
                                          std::chrono::system_clock::time_point now) {
  dir::EffectivePolicy policy = dir::ResolvePolicy(view, owner);
  return dir::LivePeers(view, owner, now, seconds(int64_t{policy.peer_max_age_minutes} * 60));
}

}  // namespace

CaretakerDecision DecideCaretaker(const dir::DirectoryView& view, const std::string& owner,
                                  std::chrono::system_clock::time_point now) {
  CaretakerDecision d;
  const dir::AgentRecord* entry = FindAgent(view, owner);
  if (entry == nullptr) {
    d.why = owner + " has no entry in the directory";
    return d;
  }
  if (!entry->last_seen) {
    d.why = owner + " never sent a heartbeat";
    return d;
  }
  const dir::EffectivePolicy policy = dir::ResolvePolicy(view, owner);
  if (policy.caretaker_after_minutes == 0) {
    d.why = owner + "'s policy has sparetimeCaretakerAfterMinutes 0 (no caretaker)";
    return d;
  }
  const auto silent = std::chrono::duration_cast<seconds>(now - *entry->last_seen);
  const minutes after(policy.caretaker_after_minutes);
  if (silent < after) {
    d.why = owner + " sent a heartbeat " + std::to_string(silent.count()) + " s ago, less than " +
            std::to_string(after.count()) + " min (sparetimeCaretakerAfterMinutes)";
    return d;
  }
  d.absent = true;
  std::vector<dir::AgentRecord> live = OwnersPeers(view, owner, now);
  if (live.empty()) {
    d.why = owner + " is silent and none of its peers is live";
    return d;
  }
  std::vector<replication::PlacementPeer> candidates;
  for (const dir::AgentRecord& a : live) candidates.push_back({Lower(a.name), "", 1});
  std::vector<size_t> rank = replication::RankPeers(OwnerKey(owner), candidates, 1);
  d.caretaker = live[rank.front()].name;
  d.why = owner + " silent for " + std::to_string(silent.count() / 60) + " min (caretaker after " +
          std::to_string(after.count()) + " min): " + d.caretaker + " is its caretaker";
  return d;
}

Status MayCareFor(const dir::DirectoryView& view, const std::string& caller,
                  const std::string& owner, std::chrono::system_clock::time_point now) {
  CaretakerDecision d = DecideCaretaker(view, owner, now);
  if (!d.caretaker.empty() && dir::EqualsIgnoreCase(d.caretaker, caller)) return Status::Ok();
  return PermissionDenied(caller + " is not the caretaker of " + owner + " on this peer (" + d.why +
                          "; docs/peers.md \"Caretaker\")");
}

std::string CaretakeReport::ToString() const {
  return std::to_string(chunks) + " chunk(s) on " + std::to_string(peers) + " live peer(s) (" +
         std::to_string(peers_unavailable) + " unavailable), " + std::to_string(short_before) +
         " below R, " + std::to_string(copied) + " copy(ies) made (" + std::to_string(bytes) +
         " bytes), " + std::to_string(still_short) + " still below R" +
         (over_quota ? ", " + std::to_string(over_quota) + " peer(s) over quota skipped" : "");
}

Result<CaretakeReport> Caretake(const CaretakeRequest& r) {
  const config::AgentConfig& config = *r.config;
  const dir::DirectoryView& view = *r.view;
  auto log = [&r](const std::string& line) {
    if (r.log) r.log(line);
  };
  CaretakerDecision d = DecideCaretaker(view, r.owner, r.now);
  if (!dir::EqualsIgnoreCase(d.caretaker, config.name)) {
    return FailedPrecondition(config.name + " is not the caretaker of " + r.owner + ": " + d.why);
  }
  const dir::EffectivePolicy policy = dir::ResolvePolicy(view, r.owner);
  const size_t replicas = policy.replicas;
  std::vector<dir::AgentRecord> live = OwnersPeers(view, r.owner, r.now);

  // Sessions to every live peer of the owner (this agent included: its own
  // peer service answers like any other); who holds which chunk.
  peer::PeerClientOptions client;
  client.connect_timeout = std::min<std::chrono::milliseconds>(config.peer_timeout, seconds(5));
  client.handshake_timeout = config.peer_timeout;
  client.io_timeout = config.peer_timeout;
  std::vector<std::unique_ptr<peer::PeerClient>> links(live.size());
  std::map<ChunkId, std::set<size_t>> holders;
  CaretakeReport report;
  for (size_t i = 0; i < live.size(); ++i) {
    const dir::AgentRecord& a = live[i];
    peer::PeerEndpoint endpoint{a.name, a.address, a.port,
                                transport::PublicKey::FromBytes(std::as_bytes(std::span(a.public_key)))};
    Result<std::unique_ptr<peer::PeerClient>> c = peer::PeerClient::Connect(endpoint, *r.identity, client);
    Result<std::vector<ChunkId>> ids = c.ok() ? (*c)->ListChunks(r.owner)
                                              : Result<std::vector<ChunkId>>(c.status());
    if (!ids.ok()) {
      ++report.peers_unavailable;
      log("caretaker of " + r.owner + ": peer " + a.name + " left out: " + ids.status().message());
      continue;
    }
    ++report.peers;
    links[i] = std::move(*c);
    for (const ChunkId& id : *ids) holders[id].insert(i);
  }
  report.chunks = holders.size();

  std::vector<replication::PlacementPeer> placement;
  for (const dir::AgentRecord& a : live) placement.push_back({a.name, a.site, a.free});
  std::vector<bool> full(live.size(), false);
  for (const auto& [id, held_by] : holders) {
    if (held_by.size() >= replicas) continue;
    ++report.short_before;
    size_t missing = replicas - held_by.size();
    std::shared_ptr<std::vector<std::byte>> sealed;
    for (size_t h : held_by) {
      Result<std::vector<std::byte>> blob = links[h]->GetChunk(r.owner, id);
      if (blob.ok()) {
        sealed = std::make_shared<std::vector<std::byte>>(std::move(*blob));
        break;
      }
      log("caretaker of " + r.owner + ": chunk " + id.short_hex() + " on " + live[h].name + ": " +
          blob.status().message());
    }
    if (sealed == nullptr) {
      ++report.still_short;
      continue;
    }
    for (size_t t : replication::RankPeers(id, placement, replicas)) {
      if (missing == 0) break;
      if (held_by.contains(t) || links[t] == nullptr || full[t]) continue;
      if (r.gate != nullptr) ST_RETURN_IF_ERROR(r.gate->WaitWhilePaused(sealed->size()));
      std::vector<transport::PutChunksRequest::Item> items;
      items.push_back({id, *sealed});
      Result<std::vector<Status>> put = links[t]->CaretakerPut(r.owner, std::move(items));
      Status s = put.ok() ? put->front() : put.status();
      if (s.code() == ErrorCode::kNoSpace) {
        full[t] = true;
        ++report.over_quota;
        log("caretaker of " + r.owner + ": peer " + live[t].name + " skipped: " + s.message());
        continue;
      }
      if (!s.ok()) {
        log("caretaker of " + r.owner + ": copy of chunk " + id.short_hex() + " to " +
            live[t].name + " failed: " + s.message());
        if (!put.ok()) links[t].reset();  // the session is gone
        continue;
      }
      ++report.copied;
      report.bytes += sealed->size();
      --missing;
    }
    if (missing > 0) ++report.still_short;
  }
  for (auto& link : links) {
    if (link) link->Close().IgnoreError();
  }
  return report;
}

}  // namespace sparetime::ops
