// Session: a mutually authenticated, encrypted conversation with one peer over
// a connected stream socket. Connect() runs the initiator side of the
// handshake (handshake.h) and insists on the peer's expected key; Accept()
// runs the responder side and asks an Authorizer about the initiator's key.
// After that, Send()/Receive() move whole messages as sealed frames
// (frame.h). Wire details: docs/protocol.md.
//
// Failure is confined to the session: every read and write has a deadline
// (a stalled or trickling peer is cut off), limits are checked before memory
// is allocated, and any error leaves the session dead without touching
// anything else. Codes: kUnavailable (peer gone, timeout, stream ended
// without an end frame), kCorruption (garbage, oversized or forged frames),
// kAuthFailed / kPermissionDenied / kFailedPrecondition (handshake refusals,
// see handshake.h). Errors name the peer (SessionOptions::peer_name).
//
// Thread safety: one thread may Send while another Receives; otherwise a
// Session is used by one thread. Close() must not race with either.
#ifndef SPARETIME_TRANSPORT_SESSION_H_
#define SPARETIME_TRANSPORT_SESSION_H_

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"
#include "sparetime/transport/handshake.h"
#include "sparetime/transport/identity.h"

namespace sparetime::transport {

struct SessionOptions {
  const Clock* clock = nullptr;                          // null: SystemClock()
  std::chrono::milliseconds handshake_timeout{10'000};  // the whole handshake
  std::chrono::milliseconds io_timeout{30'000};         // each frame, sent or received
  EphemeralKeySource ephemeral_keys;                     // empty: EphemeralKey::Generate
  std::string peer_name;                                 // for errors, e.g. "beta (10.0.0.2:7300)"
};

class Session {
 public:
  // Initiator. Fails (and closes the socket) unless the peer proves it holds
  // `expected_peer` and accepts our key.
  static Result<Session> Connect(Fd socket, const Identity& me, const PublicKey& expected_peer,
                                 SessionOptions options);
  // Responder. Fails (and closes the socket) unless the initiator proves it
  // holds a key and `authorize` accepts that key.
  static Result<Session> Accept(Fd socket, const Identity& me, const Authorizer& authorize,
                                SessionOptions options);

  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  // Closes the socket without an end frame (the peer sees a truncated
  // session); call Close() for a clean end.
  ~Session();

  // Sends one message (at most kMaxMessageSize bytes) within io_timeout.
  Status Send(std::span<const std::byte> message);
  // The next message, within io_timeout (or `timeout`). nullopt when the peer
  // ended the session with Close().
  Result<std::optional<std::vector<std::byte>>> Receive();
  Result<std::optional<std::vector<std::byte>>> Receive(std::chrono::milliseconds timeout);
  // Sends the end frame and closes the socket.
  Status Close();

  // The peer's authenticated long-term key.
  const PublicKey& peer_key() const;
  const std::string& peer_name() const;
  // Unique per session; both sides see the same value (channel binding).
  const std::array<std::byte, 32>& transcript_hash() const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::transport

#endif  // SPARETIME_TRANSPORT_SESSION_H_
