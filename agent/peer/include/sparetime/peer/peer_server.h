// PeerServer: serves this agent's PeerStore to other agents. It accepts TCP
// connections, runs the responder handshake (only keys the directory knows
// get a session), and answers sparetime/1 requests (transport/messages.h).
//
// Who may do what: any agent with a session may read (has, get, roots, key,
// stats) for any owner — everything held is sealed by its owner, and a box
// rebuilt after a disk failure must read its old chunks before it has
// anything else. Only the owner itself (the agent name the session's key
// belongs to) stores, releases, or replaces its roots and key — except that
// a silent owner's caretaker (may_care_for, docs/peers.md "Caretaker") may
// list, read and store that owner's sealed chunks.
//
// Strangers (issue 26): a connection is "pending" until its handshake has
// authenticated a key the directory knows, and pending connections have
// their own, smaller budget — at most max_pending_per_address from one
// source address (more are closed at once) and max_pending in total (a new
// one then evicts the oldest pending connection of the address holding the
// most) — so a flood of idle or trickling connections never takes a slot
// from an authenticated peer: those count against max_sessions only. A
// handshake has handshake_timeout in total, after which its socket is
// closed at once. Refusals are logged rate-limited: the first of a quiet
// interval with its detail, the rest as one summary line per
// refusal_log_interval.
//
// Invariants: a session's failure (garbage, oversized frames, a stalled or
// vanished peer) ends that session only; at most max_pending handshakes and
// max_sessions authenticated sessions run at once, each on its own thread,
// so the threads are bounded (plus evicted handshakes still unwinding, at
// most max_pending more); a connection's socket is closed when its thread
// ends; Stop() returns within about a second and joins every thread.
#ifndef SPARETIME_PEER_PEER_SERVER_H_
#define SPARETIME_PEER_PEER_SERVER_H_

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/peerstore/read_holds.h"
#include "sparetime/transport/identity.h"
#include "sparetime/transport/messages.h"

namespace sparetime::peer {

// The agent name an authenticated key belongs to (from the directory), or
// an error that refuses the session (kPermissionDenied: unknown key).
using KeyLookup = std::function<Result<std::string>(const transport::PublicKey&)>;

// Serves the migration requests (transport/messages.h, Migrate*) of the
// session's agent `source`; the daemon's implementation checks its policy.
// Without one, they are refused. Called from session threads concurrently.
class MigrationHandler {
 public:
  virtual ~MigrationHandler() = default;
  virtual Result<std::vector<bool>> Has(const std::string& source, std::span<const ChunkId> ids) = 0;
  virtual Result<std::vector<Status>> Put(const std::string& source,
                                          const std::vector<transport::PutChunksRequest::Item>& chunks) = 0;
  virtual Result<transport::MigrateRestoreReply> Restore(const std::string& source,
                                                         const transport::MigrateRestoreRequest& request) = 0;
  // May a process with these credentials (by name) run here? OK or why not.
  virtual Status Check(const std::string& source, const transport::MigrateCheckRequest& request) = 0;
};

struct PeerServerOptions {
  std::string listen_address = "0.0.0.0";
  uint16_t port = 7401;  // 0: any free port (see PeerServer::port)
  // Authenticated sessions at once; a further authenticated peer is
  // refused after its handshake.
  size_t max_sessions = 32;
  // Connections whose handshake has not finished: in total, and from one
  // source address (the IP, whatever the port).
  size_t max_pending = 16;
  size_t max_pending_per_address = 8;
  // The whole handshake; then the socket is closed.
  std::chrono::milliseconds handshake_timeout{10'000};
  // Refused connections and failed handshakes are logged once per interval
  // (the first at once, the rest summarised at the interval's end).
  std::chrono::milliseconds refusal_log_interval{60'000};
  std::chrono::milliseconds io_timeout{30'000};
  // A session with no request for this long is closed.
  std::chrono::milliseconds idle_timeout{120'000};
  // Log lines (refusals rate-limited as above); empty: stderr.
  std::function<void(const std::string&)> log;
  // Not owned; must outlive the server. Null: migrations are refused.
  MigrationHandler* migration = nullptr;
  // Whether the session's agent `caller` may read (has, get chunk, get
  // roots, get key) what this peer holds for `owner` (never asked for
  // caller == owner). kPermissionDenied is sent back and logged. Null: only
  // owners read their own (what the daemon narrows with the directory's
  // sparetimeRestoreFor, see agent_loop.h).
  std::function<Status(const std::string& caller, const std::string& owner)> may_read;
  // Read holds (docs/peers.md "Read holds"): HoldSnapshot is allowed to
  // whoever may read the owner's backups; while an owner has a live hold,
  // its ReleaseChunks is refused with kUnavailable ("deferred: ..."). Null:
  // HoldSnapshot is refused and releases always go through.
  peerstore::ReadHolds* holds = nullptr;
  // Caretaker (docs/peers.md "Caretaker"): OK when `caller` is, in this
  // peer's own view, the caretaker of the silent `owner` (ops::MayCareFor).
  // It may then list, ask about and get `owner`'s chunks and store sealed
  // chunks for `owner` (CaretakerPutChunks) — never read or replace the key
  // or roots, never release. Null: caretaker requests are refused.
  std::function<Status(const std::string& caller, const std::string& owner)> may_care_for;
};

class PeerServer {
 public:
  // Listens and starts serving in background threads.
  static Result<std::unique_ptr<PeerServer>> Start(const transport::Identity& identity,
                                                   peerstore::PeerStore& store, KeyLookup lookup,
                                                   PeerServerOptions options,
                                                   const Clock& clock = SystemClock());
  // Stop(), without the last refusal summary: the log callback may already
  // be gone when the server is destroyed as part of its owner.
  ~PeerServer();
  PeerServer(const PeerServer&) = delete;
  PeerServer& operator=(const PeerServer&) = delete;

  uint16_t port() const;
  // Sessions served so far, and refused (over a limit, evicted, handshake or
  // authorisation failed).
  uint64_t sessions_served() const;
  uint64_t sessions_refused() const;
  // Connections now in their handshake, and authenticated sessions now open.
  size_t pending_connections() const;
  size_t open_sessions() const;
  // PutChunks requests answered so far (each ends in one store flush).
  uint64_t put_requests() const;
  // Ends every session and joins every thread; then logs the refusals of the
  // current interval that were not summarised yet.
  void Stop();

 private:
  class Impl;
  explicit PeerServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::peer

#endif  // SPARETIME_PEER_PEER_SERVER_H_
