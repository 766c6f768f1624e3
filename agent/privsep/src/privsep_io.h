// Sending and receiving one privsep message with descriptors (SCM_RIGHTS)
// over a SOCK_SEQPACKET socket. Internal to agent/privsep.
//
// Invariants: a message is one datagram; a datagram longer than the buffer
// is kInvalidArgument (MSG_TRUNC), never half-read; the peer's close is
// kUnavailable; received descriptors are close-on-exec and owned by the
// caller (closed on every error path).
#ifndef SPARETIME_PRIVSEP_SRC_PRIVSEP_IO_H_
#define SPARETIME_PRIVSEP_SRC_PRIVSEP_IO_H_

#include <cstddef>
#include <span>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/base/status.h"

namespace sparetime::privsep::detail {

Status SendMessage(int socket, std::span<const std::byte> bytes, const std::vector<int>& fds);
// Bytes received into `buf`; descriptors into *fds (refused and closed when null).
Result<size_t> ReceiveMessage(int socket, std::span<std::byte> buf, std::vector<Fd>* fds);

}  // namespace sparetime::privsep::detail

#endif  // SPARETIME_PRIVSEP_SRC_PRIVSEP_IO_H_
