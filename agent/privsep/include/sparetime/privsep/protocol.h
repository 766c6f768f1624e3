// The privilege-separation protocol: the messages sparetimed (unprivileged)
// and its privileged helper exchange over a SOCK_SEQPACKET socketpair
// (docs/ARCHITECTURE.md "Privilege separation").
//
// Wire format, integers little-endian, exactly one message per datagram:
//   request: u32 body_length | u8 version (1) | u8 command | u8 flags |
//            u16 arg_length | arg (a path: no NUL byte, at most 4096 bytes)
//   reply:   u32 body_length | u8 version (1) | u8 code (ErrorCode) |
//            u8 fd_count | u16 text_length | text (an error message, or "")
//   fds (OPEN_DEVICE_RO) travel with the reply as SCM_RIGHTS.
//
// Invariants (what Decode* checks, and the fuzz target tests/fuzz/privsep_fuzz.cc
// relies on): body_length equals the bytes that follow it; every length is
// within bounds; the version is 1; the command and code are known values;
// flags carry only defined bits (kFlagDirect, OPEN_DEVICE_RO only); a reply
// that is not OK carries no fd; what decodes encodes to the same bytes.
#ifndef SPARETIME_PRIVSEP_PROTOCOL_H_
#define SPARETIME_PRIVSEP_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/status.h"

namespace sparetime::privsep {

inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kMaxArg = 4096;
inline constexpr size_t kMaxText = 4096;
inline constexpr size_t kHeaderSize = 4;
// Largest datagram either side sends or accepts.
inline constexpr size_t kMaxMessage = kHeaderSize + 5 + kMaxText;
inline constexpr uint8_t kMaxFds = 2;

// The fixed command set; each is what the unprivileged process cannot do
// (docs/ARCHITECTURE.md lists why each needs root).
enum class Command : uint8_t {
  kOpenDeviceRo = 1,    // open a listed device read-only, pass the fd(s)
  kSnapshotCreate = 2,  // reserved: LVM snapshot of a listed volume (not implemented)
  kSnapshotRemove = 3,  // reserved
  kFreeze = 4,          // reserved: FIFREEZE a listed mount point (not implemented)
  kThaw = 5,            // reserved
  kRestoreProcess = 6,  // reserved: restore a migrated process as an allowed uid
};
std::string_view CommandName(Command c);

// OPEN_DEVICE_RO: also pass a second descriptor opened O_DIRECT (when the
// filesystem or device supports it).
inline constexpr uint8_t kFlagDirect = 1;

struct Request {
  Command command = Command::kOpenDeviceRo;
  uint8_t flags = 0;
  std::string arg;
};

struct Reply {
  ErrorCode code = ErrorCode::kOk;
  uint8_t fd_count = 0;
  std::string text;
};

std::vector<std::byte> EncodeRequest(const Request& r);
std::vector<std::byte> EncodeReply(const Reply& r);
// kInvalidArgument naming what is wrong with the bytes.
Result<Request> DecodeRequest(std::span<const std::byte> bytes);
Result<Reply> DecodeReply(std::span<const std::byte> bytes);

}  // namespace sparetime::privsep

#endif  // SPARETIME_PRIVSEP_PROTOCOL_H_
