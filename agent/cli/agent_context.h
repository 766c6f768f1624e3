// What a CLI command run with --config knows about its agent: the parsed
// sparetime.conf and the directory as read now (or its cached copy when the
// directory is unreachable). Shared by `peers`, `policy` and every command
// that works on the backups kept by peers.
#ifndef SPARETIME_AGENT_CLI_AGENT_CONTEXT_H_
#define SPARETIME_AGENT_CLI_AGENT_CONTEXT_H_

#include <string>

#include "commands.h"
#include "sparetime/base/status.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/client.h"

namespace sparetime::cli {

struct AgentContext {
  config::AgentConfig config;
  directory::DirectoryState state;
};

// The config file every agent-aware command reads (--config, default
// /etc/sparetime/sparetime.conf, or $SPARETIME_CONFIG).
inline constexpr char kDefaultConfigPath[] = "/etc/sparetime/sparetime.conf";

// --config, $SPARETIME_CONFIG, or kDefaultConfigPath.
std::string ConfigPath(const GlobalOptions& g);

// Whether this command works with an agent config: --config (or
// $SPARETIME_CONFIG) given, or no --repo and the default config installed.
bool UsesAgentConfig(const GlobalOptions& g);

// Loads the config, then reads the directory through the cached client. On
// failure prints the error and sets *exit_code (9 for the config, 10 when the
// directory is unreachable without a cache).
Result<AgentContext> LoadAgentContext(const GlobalOptions& g, int* exit_code);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_AGENT_CONTEXT_H_
