// libFuzzer target: the wrapped master key (WrappedKey::FromJson), the key
// file of a repository and what a peer hands back for an owner. What parses
// must serialize and parse to the same key (else __builtin_trap). Unwrapping
// is not fuzzed: Argon2id per input would make the run useless.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "sparetime/imaging/keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparetime;
  Result<WrappedKey> k = WrappedKey::FromJson(fuzz::Text(data, size));
  if (!k.ok()) return 0;
  Result<WrappedKey> again = WrappedKey::FromJson(k->ToJson());
  if (!again.ok() || again->version != k->version || again->opslimit != k->opslimit ||
      again->memlimit != k->memlimit || again->salt != k->salt || again->nonce != k->nonce ||
      again->ciphertext != k->ciphertext) {
    __builtin_trap();
  }
  return 0;
}
