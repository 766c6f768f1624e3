// `sparetime peers` and `sparetime policy`: what this agent sees in its
// directory (LDAP or the LDIF file named by sparetime.conf) and why.
#ifndef SPARETIME_AGENT_CLI_DIRECTORY_COMMANDS_H_
#define SPARETIME_AGENT_CLI_DIRECTORY_COMMANDS_H_

#include <string>

#include "agent_context.h"
#include "commands.h"

namespace sparetime::cli {

// `probe`: also open a session to each live peer (with this agent's identity
// key from the state directory) and show what it holds for us.
int RunPeers(const GlobalOptions& g, bool probe);
// `peers --orphans` / `peers --purge HOST` (ops::ListOrphans, PurgeOrphan):
// what this agent holds for owners gone from the directory.
int RunOrphans(const GlobalOptions& g);
int RunPurge(const GlobalOptions& g, const std::string& host);
// `host` empty: this agent's own name from the config.
int RunPolicy(const GlobalOptions& g, const std::string& host);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_DIRECTORY_COMMANDS_H_
