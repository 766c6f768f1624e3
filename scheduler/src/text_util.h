// Internal helpers shared by the sensors: splitting /proc and /sys text into
// lines and fields, strict number parsing, counter deltas, the "unexpected
// content" error, and the number formats used in reasons ("34%", "3.2 MB/s",
// "12 s").
#ifndef SPARETIME_SCHEDULER_TEXT_UTIL_H_
#define SPARETIME_SCHEDULER_TEXT_UTIL_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/base/text.h"

namespace sparetime::scheduler {

// Fields separated by runs of spaces or tabs.
std::vector<std::string_view> SplitFields(std::string_view line);
// Leading and trailing whitespace removed.
std::string_view TrimSpace(std::string_view s);

// Whole-string decimal parses; nullopt on anything else.
std::optional<uint64_t> ParseU64(std::string_view s);
std::optional<double> ParseDouble(std::string_view s);

// kCorruption: "<path> line <n>: expected <what>, got "<line>"", with a hint
// that the file is not in the Linux format the sensor understands.
Status UnexpectedContent(std::string_view path, size_t line_number, std::string_view what,
                         std::string_view line);

// now - before for a kernel counter, 0 when it went backwards (the device
// or interface was re-created and its counters restarted).
inline uint64_t CounterDelta(uint64_t now, uint64_t before) {
  return now >= before ? now - before : 0;
}

// "34%", "0.4%" (one decimal below 10).
std::string FormatPercent(double percent);
// "512 B/s", "3.2 kB/s", "3.2 MB/s" (decimal units).
std::string FormatRate(double bytes_per_sec);
// "12 s", "14 min", "3 h" (rounded down; negative shown as 0 s).
std::string FormatDuration(std::chrono::nanoseconds d);

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_TEXT_UTIL_H_
