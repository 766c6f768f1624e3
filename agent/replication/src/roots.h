// Roots: an owner's snapshot list as its peers keep it, so a box with only
// the passphrase finds its snapshots. Plaintext is JSON
//   {"format":"sparetime-roots","version":1,"owner":NAME,"generation":N,
//    "chunk_size":C,"zstd_level":Z,"id_hash":H,"snapshots":[ {snapshot}, ... ]}
// (version 2 and "id_hash":"hmac-sha256" for HMAC-SHA-256 chunk ids, so a
// sparetime that predates them refuses the list; version 1 with "id_hash"
// "blake2b" or none at all for BLAKE2b ids), and the blob a peer stores is
//   id(32) || Codec::Seal(kManifest, id, json)
// with id = Codec::Id(json) by a codec with BLAKE2b ids whatever the
// repository's id function (the envelope must open before that function is
// known: a new host learns it from here): authenticated with the owner's manifest key, and
// the generation inside must equal the one the peer reports, so a peer can
// neither forge a list nor pass an old one off as newer.
#ifndef SPARETIME_REPLICATION_ROOTS_H_
#define SPARETIME_REPLICATION_ROOTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/repository.h"

namespace sparetime::replication {

struct Roots {
  std::string owner;
  uint64_t generation = 0;
  RepositoryConfig config;
  std::vector<Snapshot> snapshots;
};

std::vector<std::byte> SealRoots(const Roots& roots, const Codec& codec);
// kCorruption when the blob fails authentication, does not parse, or names
// another owner or generation than expected.
Result<Roots> OpenRoots(std::span<const std::byte> blob, const Codec& codec,
                        const std::string& owner, uint64_t generation);

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_ROOTS_H_
