// libFuzzer target: sparetimed's status.json (config::ParseStatus), which
// `sparetime status` reads. What parses must write and parse back to the
// same status (else __builtin_trap).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "sparetime/base/fd.h"
#include "sparetime/config/status_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparetime;
  Result<config::AgentStatus> s = config::ParseStatus(fuzz::Text(data, size), "status.json");
  if (!s.ok()) return 0;
  const std::string path = fuzz::ScratchDir() + "/status.json";
  if (!config::WriteStatus(path, *s).ok()) return 0;  // e.g. a string that is not UTF-8
  Result<config::AgentStatus> again = config::ReadStatus(path);
  if (!again.ok() || again->agent != s->agent || again->pid != s->pid ||
      again->peers != s->peers || again->jobs.size() != s->jobs.size()) {
    __builtin_trap();
  }
  return 0;
}
