// Internal to ops: the PeerRepository options of this agent (config + view
// -> AgentPeerOptions) with the identity key their sessions use. Shared by
// backups.cc (Open/Init) and keys.cc (the key use cases).
#ifndef SPARETIME_OPS_SRC_PEER_SETUP_H_
#define SPARETIME_OPS_SRC_PEER_SETUP_H_

#include <memory>

#include "sparetime/ops/backups.h"
#include "sparetime/replication/peer_repository.h"
#include "sparetime/transport/identity.h"

namespace sparetime::ops {

struct PeerSetup {
  std::unique_ptr<transport::Identity> owned;  // when loaded here
  replication::PeerRepositoryOptions options;
};

// Loads the identity (unless `a.identity` is given) and builds the options.
Result<PeerSetup> LoadPeerSetup(const AgentPeers& a, const OpenOptions& o);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_SRC_PEER_SETUP_H_
