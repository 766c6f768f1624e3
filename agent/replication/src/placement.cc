// Weighted rendezvous hashing with site spread (see placement.h).
#include "sparetime/replication/placement.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace sparetime::replication {
namespace {

// -weight / ln(u): larger is better; u uniform in (0,1) from the hash.
double Score(const ChunkId& id, const PlacementPeer& peer) {
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, 8);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(id.bytes.data()),
                            id.bytes.size());
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(peer.name.data()),
                            peer.name.size());
  unsigned char out[8];
  crypto_generichash_final(&state, out, sizeof out);
  uint64_t h = 0;
  for (unsigned char b : out) h = (h << 8) | b;
  // 53 random bits, never 0 or 1.
  double u = (static_cast<double>(h >> 11) + 0.5) / 9007199254740992.0;
  return -static_cast<double>(peer.weight) / std::log(u);
}

}  // namespace

std::vector<size_t> RankPeers(const ChunkId& id, std::span<const PlacementPeer> peers,
                              size_t replicas) {
  std::vector<std::pair<double, size_t>> scored;
  for (size_t i = 0; i < peers.size(); ++i) {
    if (peers[i].weight == 0) continue;
    scored.emplace_back(Score(id, peers[i]), i);
  }
  std::sort(scored.begin(), scored.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return peers[a.second].name < peers[b.second].name;
  });
  // An empty site is a site of its own (keyed by the peer's name).
  auto site_of = [&](size_t i) { return peers[i].site.empty() ? "\x01" + peers[i].name : peers[i].site; };
  std::vector<size_t> ranked;
  std::vector<bool> taken(scored.size(), false);
  std::set<std::string> used_sites;
  while (ranked.size() < std::min(replicas, scored.size())) {
    // The best peer on an unused site, else the best remaining peer.
    size_t pick = scored.size();
    for (size_t k = 0; k < scored.size(); ++k) {
      if (taken[k]) continue;
      if (pick == scored.size()) pick = k;
      if (!used_sites.contains(site_of(scored[k].second))) {
        pick = k;
        break;
      }
    }
    taken[pick] = true;
    used_sites.insert(site_of(scored[pick].second));
    ranked.push_back(scored[pick].second);
  }
  for (size_t k = 0; k < scored.size(); ++k) {
    if (!taken[k]) ranked.push_back(scored[k].second);
  }
  return ranked;
}

}  // namespace sparetime::replication
