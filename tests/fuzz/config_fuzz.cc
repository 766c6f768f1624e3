// libFuzzer target: sparetime.conf (agent/config ParseConfig), the INI file a
// bad admin edit can break. Findings: crashes and sanitizer reports; every
// input must parse or be refused with a Status.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "sparetime/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(sparetime::fuzz::Text(data, size));
  sparetime::config::ParseConfig(text, "fuzz.conf").status().IgnoreError();
  // The value parsers on their own, for the first line.
  std::string line = text.substr(0, text.find('\n'));
  sparetime::config::ParseSize(line).status().IgnoreError();
  sparetime::config::ParseDuration(line).status().IgnoreError();
  return 0;
}
