// `sparetime status`: what the running sparetimed reports in its status
// file (directory reachability, registration, peers, policy in force).
#ifndef SPARETIME_AGENT_CLI_STATUS_COMMAND_H_
#define SPARETIME_AGENT_CLI_STATUS_COMMAND_H_

#include "commands.h"

namespace sparetime::cli {

int RunStatus(const GlobalOptions& g);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_STATUS_COMMAND_H_
