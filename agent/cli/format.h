// How the CLI shows sizes, times and ages to people (and times in JSON).
#ifndef SPARETIME_AGENT_CLI_FORMAT_H_
#define SPARETIME_AGENT_CLI_FORMAT_H_

#include <cstdint>
#include <string>

namespace sparetime::cli {

// "1.5 GiB", "512 B".
std::string HumanBytes(uint64_t bytes);
// "2026-11-26T04:15:00Z" for Unix seconds.
std::string IsoTime(int64_t unix_seconds);
// "42s ago", "5m ago", "3h ago", "2d ago", "in the future".
std::string Age(int64_t seconds);
// A length of time without "ago": "45s", "90m", "36h", "3d".
std::string Span(int64_t seconds);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_FORMAT_H_
