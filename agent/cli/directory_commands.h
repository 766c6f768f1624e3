// `sparetime peers` and `sparetime policy`: what this agent sees in its
// directory (LDAP or the LDIF file named by sparetime.conf) and why.
#ifndef SPARETIME_AGENT_CLI_DIRECTORY_COMMANDS_H_
#define SPARETIME_AGENT_CLI_DIRECTORY_COMMANDS_H_

#include <string>

#include "commands.h"

namespace sparetime::cli {

// The config file every directory-aware command reads (--config, default
// /etc/sparetime/sparetime.conf, or $SPARETIME_CONFIG).
inline constexpr char kDefaultConfigPath[] = "/etc/sparetime/sparetime.conf";

// `probe`: also open a session to each live peer (with this agent's identity
// key from the state directory) and show what it holds for us.
int RunPeers(const GlobalOptions& g, bool probe);
// `host` empty: this agent's own name from the config.
int RunPolicy(const GlobalOptions& g, const std::string& host);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_DIRECTORY_COMMANDS_H_
