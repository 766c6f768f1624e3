// libFuzzer target: the fleet state values an agent (or a broken or hostile
// one) writes into its directory entry (directory::ParseDeviceState,
// ParseBackupHealth). What parses must encode and parse back to the same
// value (else __builtin_trap).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "sparetime/directory/fleet_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparetime;
  const std::string text(fuzz::Text(data, size));
  if (auto d = directory::ParseDeviceState(text); d.ok()) {
    auto again = directory::ParseDeviceState(directory::EncodeDeviceState(*d));
    if (!again.ok() || !(*again == *d)) __builtin_trap();
  }
  if (auto h = directory::ParseBackupHealth(text); h.ok()) {
    // The encoder cuts a long error to kMaxErrorChars; compare what it keeps.
    auto again = directory::ParseBackupHealth(directory::EncodeBackupHealth(*h));
    if (!again.ok() || again->healthy != h->healthy || again->replicas != h->replicas ||
        again->under_replicated != h->under_replicated || again->last_verify != h->last_verify) {
      __builtin_trap();
    }
  }
  return 0;
}
