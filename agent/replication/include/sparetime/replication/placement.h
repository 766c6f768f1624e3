// Placement: which peers hold a chunk's replicas. Weighted rendezvous
// (highest-random-weight) hashing: every (chunk, peer) pair gets a score
// -weight / ln(u), u in (0,1) from BLAKE2b(chunk id || peer name); the
// peers ranked by score are the chunk's candidates. Adding or removing one
// peer moves only the chunks it wins or held, and a peer's share of chunks
// is proportional to its weight (its free capacity).
//
// Site spread: the first `replicas` picks prefer peers of sites not used yet
// (so two replicas never share a site while another site has a candidate);
// the rest of the ranking follows in score order, so a caller that loses a
// peer takes the next candidate. Pure: no I/O, deterministic.
#ifndef SPARETIME_REPLICATION_PLACEMENT_H_
#define SPARETIME_REPLICATION_PLACEMENT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparetime/crypto/chunk_id.h"

namespace sparetime::replication {

struct PlacementPeer {
  std::string name;
  std::string site;     // empty: a site of its own
  uint64_t weight = 1;  // free bytes offered; 0 peers are never chosen
};

// Indices into `peers`, best first: `replicas` site-spread picks, then every
// other peer with a non-zero weight in score order.
std::vector<size_t> RankPeers(const ChunkId& id, std::span<const PlacementPeer> peers,
                              size_t replicas);

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_PLACEMENT_H_
