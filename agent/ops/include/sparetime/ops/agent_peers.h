// AgentPeerOptions: the PeerRepository options for this agent, from its
// sparetime.conf and the directory as last read — its live peers (placement
// weights = their free space, sites), the policy's replica count and upload
// bandwidth, and the config's peer timeout. Shared by the CLI (`sparetime
// --config ...`) and sparetimed's scheduled jobs, so both talk to the same
// peers the same way.
//
// The policy's sparetimeCompressionLevel is the zstd level of new chunks
// (PeerRepositoryOptions::zstd_level); its sparetimeChunkSize applies only
// at init (ops::InitConfig) and is compared at open (ops::PolicyWarnings).
//
// Reading another host's backups (`host` set): this agent's own peer store
// is a source too (it may have been one of that host's peers).
#ifndef SPARETIME_OPS_AGENT_PEERS_H_
#define SPARETIME_OPS_AGENT_PEERS_H_

#include <chrono>
#include <functional>
#include <string>

#include "sparetime/config/config.h"
#include "sparetime/directory/records.h"
#include "sparetime/replication/peer_repository.h"
#include "sparetime/transport/identity.h"

namespace sparetime::ops {

// REQUIRES: `identity` outlives the repository opened with the result.
// `report` receives the operator-facing warnings (may be empty).
replication::PeerRepositoryOptions AgentPeerOptions(const config::AgentConfig& config,
                                       const directory::DirectoryView& view,
                                       const transport::Identity* identity,
                                       const std::string& host,
                                       std::chrono::system_clock::time_point now,
                                       std::function<void(const std::string&)> report);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_AGENT_PEERS_H_
