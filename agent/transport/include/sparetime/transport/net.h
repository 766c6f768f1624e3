// TCP plumbing for sessions: listening, accepting and connecting with
// timeouts. Every socket is created with SOCK_CLOEXEC and has TCP_NODELAY
// set (handshake and request/response latency matter more than packet
// count). Errors name the address; an unreachable or refusing peer is
// kUnavailable.
//
// Thread safety: free functions; a listening Fd may be accepted on by one
// thread at a time.
#ifndef SPARETIME_TRANSPORT_NET_H_
#define SPARETIME_TRANSPORT_NET_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"

namespace sparetime::transport {

// Listens on a numeric address ("127.0.0.1", "::", "0.0.0.0"); port 0 picks
// a free port (see LocalPort).
Result<Fd> ListenTcp(const std::string& address, uint16_t port, int backlog = 64);
Result<uint16_t> LocalPort(const Fd& socket);
// Waits up to `timeout` for one connection.
Result<Fd> AcceptTcp(const Fd& listener, std::chrono::milliseconds timeout);
// Resolves `host` (name or numeric) and connects within `timeout`.
Result<Fd> ConnectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);
// "address:port" of the connected peer ("[v6]:port" for IPv6), or "local
// socket" for a non-IP socket such as a socketpair.
std::string PeerAddress(int fd);

}  // namespace sparetime::transport

#endif  // SPARETIME_TRANSPORT_NET_H_
