// libFuzzer target for everything a peer can feed the transport before and
// after authentication. The first input byte picks the parser; the rest is
// its input:
//   0  DecodeMessage; what decodes must re-encode to exactly the same bytes
//   1  ParseFrameHeader + FrameOpener::Open (fixed key)
//   2  ResponderHandshake::OnHello
//   3  InitiatorHandshake::OnResponse (after a real HELLO)
//   4  ResponderHandshake::OnFinish (after a real HELLO/RESPONSE)
//   5  InitiatorHandshake::OnAccept (after a real exchange up to FINISH)
// Crashes, sanitizer reports and a broken round trip (__builtin_trap) are
// findings. Built and run by scripts/fuzz (clang, separate CMake project).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "sparetime/transport/frame.h"
#include "sparetime/transport/handshake.h"
#include "sparetime/transport/messages.h"

namespace {

using namespace sparetime;
using namespace sparetime::transport;

const Identity& Initiator() {
  static const Identity id = Identity::FromSeed(std::span<const std::byte, 32>(
      reinterpret_cast<const std::byte*>("fuzz-initiator-seed-32-bytes....."), 32));
  return id;
}
const Identity& Responder() {
  static const Identity id = Identity::FromSeed(std::span<const std::byte, 32>(
      reinterpret_cast<const std::byte*>("fuzz-responder-seed-32-bytes....."), 32));
  return id;
}
Status AllowAll(const PublicKey&) { return Status::Ok(); }
// Fixed ephemeral keys keep every run of an input identical.
EphemeralKey Ephemeral(uint8_t fill) {
  std::byte secret[32];
  std::memset(secret, fill, sizeof secret);
  return EphemeralKey::FromSecret(secret);
}

void FuzzMessage(std::span<const std::byte> in) {
  Result<Message> m = DecodeMessage(in);
  if (!m.ok()) return;
  Result<std::vector<std::byte>> again = EncodeMessage(*m);
  if (!again.ok() || again->size() != in.size() ||
      std::memcmp(again->data(), in.data(), in.size()) != 0) {
    __builtin_trap();  // decode accepted a non-canonical or unencodable message
  }
}

void FuzzFrame(std::span<const std::byte> in) {
  if (in.size() < kFrameHeaderSize) return;
  auto header = std::span<const std::byte, kFrameHeaderSize>(in.data(), kFrameHeaderSize);
  if (!ParseFrameHeader(header).ok()) return;
  SecretBuffer key(32);
  FrameOpener opener(std::move(key));
  opener.Open(header, in.subspan(kFrameHeaderSize)).status().IgnoreError();
}

void FuzzHandshake(int step, std::span<const std::byte> in) {
  InitiatorHandshake init(Initiator(), Responder().public_key(), Ephemeral(0x11));
  ResponderHandshake resp(Responder(), Ephemeral(0x22));
  if (step == 2) {
    resp.OnHello(in).status().IgnoreError();
    return;
  }
  auto msg2 = resp.OnHello(init.Hello());
  if (!msg2.ok()) __builtin_trap();
  if (step == 3) {
    init.OnResponse(in).status().IgnoreError();
    return;
  }
  if (step == 4) {
    resp.OnFinish(in, AllowAll).status().IgnoreError();
    return;
  }
  if (!init.OnResponse(*msg2).ok()) __builtin_trap();
  init.OnAccept(in).status().IgnoreError();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: FuzzMessage(in); break;
    case 1: FuzzFrame(in); break;
    default: FuzzHandshake(data[0] % 6, in); break;
  }
  return 0;
}
