// `sparetime prune`: apply the retention policy to the snapshots of a local
// repository (--repo) or of this agent's backups on its peers (--config),
// and free the chunks nothing references any more.
//
// Policy: when any --keep-* flag is given, the flags are the whole policy
// (unset ones are 0, as restic's forget); otherwise the directory policy of
// this agent (--config, as `sparetime policy` shows it) or, for --repo, the
// built-in one (last 3, daily 7, weekly 4, monthly 6).
#ifndef SPARETIME_AGENT_CLI_PRUNE_COMMAND_H_
#define SPARETIME_AGENT_CLI_PRUNE_COMMAND_H_

#include <cstdint>
#include <optional>

#include <CLI/CLI.hpp>

#include "commands.h"

namespace sparetime::cli {

struct PruneCommandOptions {
  std::optional<uint32_t> keep_last, keep_daily, keep_weekly, keep_monthly;
  bool dry_run = false;
};

// Adds the `prune` subcommand's options to `cmd`.
void AddPruneOptions(CLI::App* cmd, PruneCommandOptions* o);
int RunPrune(const GlobalOptions& g, const PruneCommandOptions& o);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_PRUNE_COMMAND_H_
