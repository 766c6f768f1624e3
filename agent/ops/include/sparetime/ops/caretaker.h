// Caretaker (issue 21 part 3): healing an owner's replicas while the owner
// is gone. When an owner has sent no heartbeat for its policy's
// sparetimeCaretakerAfterMinutes, exactly one live peer — the winner of
// rendezvous hashing of the owner's name over the owner's live peers (the
// agents other than the owner with a heartbeat within the owner's
// sparetimePeerMaxAgeMinutes) — becomes its caretaker. The caretaker lists
// what every live peer holds for the owner (ListChunks, paged), counts the
// holders of each chunk, and copies sealed blobs from a holder to the
// peers placement would choose (replication/placement.h, the owner's
// weights and sites) until every chunk is back at the owner's
// sparetimeReplicas — never decrypting anything (it has no key).
//
// Invariants:
//  - One rule, two sides: DecideCaretaker is a pure function of the
//    directory view and the time; the caretaker runs Caretake when it finds
//    itself chosen, and every peer authorises the caretaker's requests
//    (ListChunks, HasChunks, GetChunk, CaretakerPutChunks for that owner)
//    with MayCareFor, the same function over its own view. A peer whose
//    view disagrees refuses (kPermissionDenied), so a caretaker acts only
//    where the peers agree it is one.
//  - Harmless twice: two agents that both believe they are caretaker (views
//    a heartbeat apart, clock skew) both copy sealed blobs; a put of a chunk
//    already held is OK and stores nothing (PeerStore::Put), so the worst
//    case is a replica above R and bytes sent twice.
//  - Resumable: nothing is kept between runs but the peers' stores. A run
//    killed midway leaves the copies it made (each acknowledged after the
//    target's fsync); the next run lists again and copies only what is
//    still short.
//  - Quotas hold: the caretaker's puts count against the owner's quota on
//    each target like the owner's own; a target over quota is skipped for
//    the rest of the run (logged once) and the next candidate is used.
//  - The owner, back, takes over: its heartbeat makes DecideCaretaker say
//    "not absent", so peers refuse the caretaker at once; the owner's next
//    repair asks the live peers (HasChunks) for the chunks its locations
//    list with fewer than R holders and records the holders the caretaker
//    made (replication/repair.cc).
#ifndef SPARETIME_OPS_CARETAKER_H_
#define SPARETIME_OPS_CARETAKER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/records.h"
#include "sparetime/transport/identity.h"

namespace sparetime::ops {

struct CaretakerDecision {
  bool absent = false;    // the owner's heartbeat is older than its caretaker time
  std::string caretaker;  // "" unless absent and a live peer is left
  std::string why;        // for logs and refusals
};

// Who cares for `owner` at `now` in `view`. Not absent: an owner without an
// entry, one that never sent a heartbeat, or a policy with
// sparetimeCaretakerAfterMinutes 0.
CaretakerDecision DecideCaretaker(const directory::DirectoryView& view, const std::string& owner,
                                  std::chrono::system_clock::time_point now);

// OK when `caller` is `owner`'s caretaker in `view` at `now`; else
// kPermissionDenied saying why (the peer service sends it back and logs it).
Status MayCareFor(const directory::DirectoryView& view, const std::string& caller,
                  const std::string& owner, std::chrono::system_clock::time_point now);

struct CaretakeRequest {
  const config::AgentConfig* config = nullptr;  // this agent (name, timeouts)
  const directory::DirectoryView* view = nullptr;
  const transport::Identity* identity = nullptr;
  std::string owner;
  std::chrono::system_clock::time_point now;
  PauseGate* gate = nullptr;  // may be null: no pause, no rate limit
  std::function<void(const std::string&)> log;
};

struct CaretakeReport {
  uint64_t peers = 0;             // live peers that answered the listing
  uint64_t peers_unavailable = 0; // unreachable, or refused this caretaker
  uint64_t chunks = 0;            // distinct chunks held for the owner
  uint64_t short_before = 0;      // chunks with fewer than R holders
  uint64_t copied = 0;            // copies stored on new holders
  uint64_t bytes = 0;             // sealed bytes copied
  uint64_t still_short = 0;       // chunks still below R (no room, no good copy)
  uint64_t over_quota = 0;        // targets skipped as full
  std::string ToString() const;
};

// One heal. kFailedPrecondition when this agent is not the owner's
// caretaker (any more); kCancelled from the gate (the next run resumes).
Result<CaretakeReport> Caretake(const CaretakeRequest& request);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_CARETAKER_H_
