// `sparetime fleet`: every host of the domain and the state of its backups,
// from the directory alone (ops::Fleet over what the agents publish).
#ifndef SPARETIME_AGENT_CLI_FLEET_COMMAND_H_
#define SPARETIME_AGENT_CLI_FLEET_COMMAND_H_

#include "commands.h"

namespace sparetime::cli {

// Exit 0 (also when hosts are overdue: the listing is the answer); 9 for a
// bad config, 10 when the directory is unreachable with nothing cached.
int RunFleet(const GlobalOptions& g);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_FLEET_COMMAND_H_
