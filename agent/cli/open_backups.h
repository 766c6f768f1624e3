// The CLI's side of ops::Open/Init: from the global options (--repo,
// --config, --host, --passphrase-file, --key-cache) to ops::OpenOptions, and
// the exit code of a failure (exit_codes.h). The backups themselves and
// every use case over them live in agent/ops.
#ifndef SPARETIME_AGENT_CLI_OPEN_BACKUPS_H_
#define SPARETIME_AGENT_CLI_OPEN_BACKUPS_H_

#include <memory>
#include <vector>

#include "commands.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/repository_config.h"
#include "sparetime/ops/backups.h"

namespace sparetime::cli {

// --repo wins; else the agent config (--config, $SPARETIME_CONFIG, or the
// default path) names the directory and the peers. `g.host` reads another
// agent's backups (peers only, read only). Prints the error and sets
// *exit_code on failure.
Result<std::unique_ptr<ops::Backups>> OpenBackups(const GlobalOptions& g, int* exit_code);

// Creates a new local repository or this agent's backups on its peers.
Status InitBackups(const GlobalOptions& g, const ops::InitSettings& settings, KdfLimits limits,
                   int* exit_code);

// Where the backups are (and the key cache), without reading a passphrase:
// what the key commands start from. Prints the error and sets *exit_code
// on failure.
struct BackupsTarget {
  std::unique_ptr<KeyCache> cache;
  ops::OpenOptions options;
};
Result<BackupsTarget> TargetOf(const GlobalOptions& g, int* exit_code);

// Prints the warnings on stderr (unless quiet), one "sparetime: warning:" line each.
void PrintWarnings(const GlobalOptions& g, const std::vector<ops::Warning>& warnings);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_OPEN_BACKUPS_H_
