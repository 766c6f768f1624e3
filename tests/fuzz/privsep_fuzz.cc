// libFuzzer target: the privsep messages (agent/privsep/protocol.h) that
// sparetimed's privileged helper decodes from the unprivileged process (a
// compromised one may send anything), and the replies the daemon decodes.
// The first byte selects request (even) or reply (odd). What decodes must
// encode to the same bytes (else __builtin_trap).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "sparetime/privsep/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparetime;
  if (size == 0) return 0;
  std::span<const std::byte> bytes = fuzz::Bytes(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    Result<privsep::Request> r = privsep::DecodeRequest(bytes);
    if (!r.ok()) return 0;
    std::vector<std::byte> again = privsep::EncodeRequest(*r);
    if (!std::equal(again.begin(), again.end(), bytes.begin(), bytes.end())) __builtin_trap();
  } else {
    Result<privsep::Reply> r = privsep::DecodeReply(bytes);
    if (!r.ok()) return 0;
    std::vector<std::byte> again = privsep::EncodeReply(*r);
    if (!std::equal(again.begin(), again.end(), bytes.begin(), bytes.end())) __builtin_trap();
  }
  return 0;
}
