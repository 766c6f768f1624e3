// Session: drives the handshake state machines over a socket, then moves
// messages as sealed frames. Invariants: every read and write is bounded by a
// deadline; a frame's length is validated before its buffer is allocated; the
// first receive (or send) error is sticky for that direction.
#include "sparetime/transport/session.h"

#include <sys/socket.h>

#include <array>

#include "socket_io.h"
#include "sparetime/base/bytes.h"
#include "sparetime/transport/frame.h"
#include "sparetime/transport/net.h"

namespace sparetime::transport {
namespace {

using internal::Deadline;

// Handshake messages travel as LE16 length || message.
class HandshakeIo {
 public:
  HandshakeIo(int fd, const Deadline& deadline) : fd_(fd), deadline_(deadline) {}

  Status Send(std::span<const std::byte> msg) {
    std::vector<std::byte> buf = Prefixed(msg);
    return internal::WriteFull(fd_, buf, deadline_, "the handshake");
  }

  Result<std::vector<std::byte>> Receive(std::string_view what) {
    std::array<std::byte, 2> len_bytes;
    ST_RETURN_IF_ERROR(internal::ReadFull(fd_, len_bytes, deadline_, what));
    size_t len = size_t(len_bytes[0]) | size_t(len_bytes[1]) << 8;
    if (len < 2 || len > kMaxHandshakeMessage) {
      return Corruption("the peer announced a handshake message of " + std::to_string(len) +
                        " bytes (limit " + std::to_string(kMaxHandshakeMessage) +
                        "): it is not a sparetime/1 peer");
    }
    std::vector<std::byte> msg(len);
    ST_RETURN_IF_ERROR(internal::ReadFull(fd_, msg, deadline_, what));
    return msg;
  }

  // A parting REJECT, when there is one to send and the peer may still listen.
  void Reject(const std::vector<std::byte>& rejection, const Status& error) {
    if (rejection.empty() || error.code() == ErrorCode::kUnavailable) return;
    internal::SendBestEffort(fd_, Prefixed(rejection));
    ::shutdown(fd_, SHUT_WR);
  }

 private:
  static std::vector<std::byte> Prefixed(std::span<const std::byte> msg) {
    std::vector<std::byte> buf{std::byte(msg.size() & 0xff), std::byte(msg.size() >> 8)};
    buf.insert(buf.end(), msg.begin(), msg.end());
    return buf;
  }

  int fd_;
  Deadline deadline_;
};

void Prepare(SessionOptions& o, const Fd& socket) {
  if (o.clock == nullptr) o.clock = &SystemClock();
  if (!o.ephemeral_keys) o.ephemeral_keys = EphemeralKey::Generate;
  if (o.peer_name.empty()) o.peer_name = PeerAddress(socket.get());
}

}  // namespace

struct Session::Impl {
  Impl(Fd socket, SessionKeys keys, const SessionOptions& o)
      : fd(std::move(socket)),
        clock(o.clock),
        io_timeout(o.io_timeout),
        peer_name(o.peer_name),
        sealer(std::move(keys.send_key)),
        opener(std::move(keys.recv_key)),
        peer(keys.peer),
        transcript_hash(keys.transcript_hash) {}

  Result<std::optional<std::vector<std::byte>>> ReceiveFrame(std::chrono::milliseconds timeout) {
    Deadline deadline = Deadline::After(*clock, timeout);
    std::array<std::byte, kFrameHeaderSize> header;
    ST_RETURN_IF_ERROR(internal::ReadFull(fd.get(), header, deadline, "a frame header"));
    ST_ASSIGN_OR_RETURN(size_t length, ParseFrameHeader(header));
    std::vector<std::byte> body(length);
    ST_RETURN_IF_ERROR(internal::ReadFull(fd.get(), body, deadline, "a frame body"));
    ST_ASSIGN_OR_RETURN(Frame frame, opener.Open(header, body));
    if (frame.kind == FrameKind::kEnd) {
      ended = true;
      return std::nullopt;
    }
    return std::move(frame.payload);
  }

  Status Failed(const Status& first) const {
    return FailedPrecondition("the session with " + peer_name +
                              " already failed or was closed: " + first.ToString());
  }

  Fd fd;
  const Clock* clock;
  std::chrono::milliseconds io_timeout;
  std::string peer_name;
  FrameSealer sealer;
  FrameOpener opener;
  PublicKey peer;
  std::array<std::byte, 32> transcript_hash;
  Status send_error;  // touched only by the sending thread
  Status recv_error;  // touched only by the receiving thread
  bool ended = false;
};

Result<Session> Session::Connect(Fd socket, const Identity& me, const PublicKey& expected_peer,
                                 SessionOptions options) {
  Prepare(options, socket);
  InitiatorHandshake hs(me, expected_peer, options.ephemeral_keys());
  HandshakeIo io(socket.get(), Deadline::After(*options.clock, options.handshake_timeout));
  Result<SessionKeys> keys = [&]() -> Result<SessionKeys> {
    ST_RETURN_IF_ERROR(io.Send(hs.Hello()));
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> response, io.Receive("the handshake RESPONSE"));
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> finish, hs.OnResponse(response));
    ST_RETURN_IF_ERROR(io.Send(finish));
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> accept, io.Receive("the handshake ACCEPT"));
    return hs.OnAccept(accept);
  }();
  if (!keys.ok()) {
    io.Reject(hs.RejectionFor(keys.error()), keys.error());
    return keys.error().WithContext("handshake with " + options.peer_name);
  }
  return Session(std::make_unique<Impl>(std::move(socket), std::move(keys).value(), options));
}

Result<Session> Session::Accept(Fd socket, const Identity& me, const Authorizer& authorize,
                                SessionOptions options) {
  Prepare(options, socket);
  ResponderHandshake hs(me, options.ephemeral_keys());
  HandshakeIo io(socket.get(), Deadline::After(*options.clock, options.handshake_timeout));
  Status st = [&]() -> Status {
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> hello, io.Receive("the handshake HELLO"));
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> response, hs.OnHello(hello));
    ST_RETURN_IF_ERROR(io.Send(response));
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> finish, io.Receive("the handshake FINISH"));
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> accept, hs.OnFinish(finish, authorize));
    return io.Send(accept);
  }();
  if (!st.ok()) {
    io.Reject(hs.RejectionFor(st), st);
    return st.WithContext("handshake with " + options.peer_name);
  }
  return Session(std::make_unique<Impl>(std::move(socket), hs.TakeKeys(), options));
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

Status Session::Send(std::span<const std::byte> message) {
  Impl& s = *impl_;
  if (!s.send_error.ok()) return s.Failed(s.send_error);
  // An oversized message is the caller's mistake; the session stays usable.
  ST_ASSIGN_OR_RETURN(std::vector<std::byte> frame, s.sealer.Seal(FrameKind::kMessage, message));
  Status st = internal::WriteFull(s.fd.get(), frame, Deadline::After(*s.clock, s.io_timeout),
                                  "sending a frame");
  if (!st.ok()) s.send_error = st = st.WithContext("session with " + s.peer_name);
  return st;
}

Result<std::optional<std::vector<std::byte>>> Session::Receive() {
  return Receive(impl_->io_timeout);
}

Result<std::optional<std::vector<std::byte>>> Session::Receive(std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  if (s.ended) return std::nullopt;
  if (!s.recv_error.ok()) return s.Failed(s.recv_error);
  auto r = s.ReceiveFrame(timeout);
  if (!r.ok()) {
    s.recv_error = r.error().WithContext("session with " + s.peer_name);
    return s.recv_error;
  }
  return r;
}

Status Session::Close() {
  Impl& s = *impl_;
  Status st;
  if (s.send_error.ok() && s.fd.valid()) {
    Result<std::vector<std::byte>> end = s.sealer.Seal(FrameKind::kEnd, {});
    st = end.ok() ? internal::WriteFull(s.fd.get(), *end, Deadline::After(*s.clock, s.io_timeout),
                                        "sending the end-of-session frame")
                  : end.error();
  }
  if (s.fd.valid()) {
    Status closed = s.fd.Close();
    if (st.ok()) st = closed;
  }
  s.send_error = s.recv_error = FailedPrecondition("closed by this agent");
  return st.WithContext("closing the session with " + s.peer_name);
}

const PublicKey& Session::peer_key() const { return impl_->peer; }
const std::string& Session::peer_name() const { return impl_->peer_name; }
const std::array<std::byte, 32>& Session::transcript_hash() const {
  return impl_->transcript_hash;
}

}  // namespace sparetime::transport
