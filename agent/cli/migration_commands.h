// `sparetime checkpoint`, `restore-process` and `migrate`: process migration
// from the command line (docs/migration.md, docs/cli.md).
//
//   checkpoint PID --to FILE [--leave-running]   the source is left stopped
//                                                (SIGSTOP) or running; never killed
//   restore-process FILE [--wait]                --wait: exit with the process's status
//   migrate PID --to HOST                        the source is killed only after
//                                                HOST confirms the process runs
//
// FILE holds the manifest and page ids; the pages are sealed chunks in this
// host's migration store (<state_dir>/migration, or --store DIR).
#ifndef SPARETIME_AGENT_CLI_MIGRATION_COMMANDS_H_
#define SPARETIME_AGENT_CLI_MIGRATION_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

#include "commands.h"

namespace sparetime::cli {

class MigrationCommands {
 public:
  // Adds the three subcommands and their options to `app`.
  explicit MigrationCommands(CLI::App& app);
  ~MigrationCommands();
  // The exit code when one of them was chosen on the command line.
  std::optional<int> Run(const GlobalOptions& g);

  struct Options;  // the parsed options (migration_commands.cc)

 private:
  std::unique_ptr<Options> o_;
};

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_MIGRATION_COMMANDS_H_
