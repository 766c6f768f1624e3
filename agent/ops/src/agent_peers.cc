// AgentPeerOptions: directory records -> PeerSetPeer list, policy -> limits.
#include "sparetime/ops/agent_peers.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "sparetime/directory/policy.h"

namespace sparetime::ops {

using replication::PeerRepositoryOptions;
using replication::PeerSetPeer;

namespace dir = sparetime::directory;

PeerRepositoryOptions AgentPeerOptions(const config::AgentConfig& config,
                                       const dir::DirectoryView& view,
                                       const transport::Identity* identity,
                                       const std::string& host,
                                       std::chrono::system_clock::time_point now,
                                       std::function<void(const std::string&)> report) {
  dir::EffectivePolicy policy = dir::ResolvePolicy(view, config.name);
  std::chrono::seconds max_age(int64_t{policy.peer_max_age_minutes} * 60);
  std::vector<dir::AgentRecord> sources = dir::LivePeers(view, config.name, now, max_age);
  for (const dir::AgentRecord& a : view.agents) {
    if (!host.empty() && dir::EqualsIgnoreCase(a.name, config.name) && a.port != 0) {
      sources.push_back(a);
    }
  }
  PeerRepositoryOptions o;
  for (const dir::AgentRecord& a : sources) {
    PeerSetPeer p;
    p.endpoint = {a.name, a.address, a.port,
                  transport::PublicKey::FromBytes(std::as_bytes(std::span(a.public_key)))};
    p.site = a.site;
    p.free_bytes = a.free;
    o.peers.push_back(std::move(p));
  }
  o.state_dir = config.state_dir;
  o.self_name = config.name;
  o.host = host;
  o.identity = identity;
  o.set.replicas = policy.replicas;
  o.set.bandwidth_limit = policy.bandwidth_limit;
  o.set.client.connect_timeout =
      std::min<std::chrono::milliseconds>(config.peer_timeout, std::chrono::seconds(5));
  o.set.client.handshake_timeout = config.peer_timeout;
  o.set.client.io_timeout = config.peer_timeout;
  o.set.report = std::move(report);
  // New chunks follow the policy's compression level (docs/configuration.md);
  // the chunk size stays the one the backups were created with.
  o.zstd_level = policy.compression_level;
  if (policy.escrow_public_key) {
    std::array<std::byte, kEscrowKeyBytes> pk;
    std::memcpy(pk.data(), policy.escrow_public_key->data(), pk.size());
    o.escrow_public_key = pk;
  }
  return o;
}

}  // namespace sparetime::ops
