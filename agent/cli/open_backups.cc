// OpenBackups/InitBackups: global options -> ops::OpenOptions (see open_backups.h).
#include "open_backups.h"

#include <cstdio>

#include "agent_context.h"
#include "exit_codes.h"
#include "passphrase_prompt.h"

namespace sparetime::cli {
namespace {

Status NoRepository() {
  return InvalidArgument("no repository given: pass --repo DIR (or set SPARETIME_REPO) for a "
                         "local repository, or --config FILE (or SPARETIME_CONFIG) for this "
                         "agent's backups on its peers");
}

// Without --repo the agent's config names the peers: --config, else the
// installed default when it exists.
bool UsePeers(const GlobalOptions& g) { return g.repo.empty() && UsesAgentConfig(g); }

// The kernel keyring cache, unless --key-cache 0.
std::unique_ptr<KeyCache> KeyCacheFor(const GlobalOptions& g) {
  if (g.key_cache_seconds <= 0) return nullptr;
  return KernelKeyCache(std::chrono::seconds(g.key_cache_seconds));
}

void PrintWarning(const ops::Warning& w) {
  std::fprintf(stderr, "sparetime: warning: %s\n", ops::WarningText(w).c_str());
}

struct Opening {
  ops::OpenOptions options;
  SecretBuffer passphrase;
};

// Where the backups are and the passphrase, or the failure (exit code set,
// error printed): no repository, then the passphrase, then the agent config
// and directory. `passphrase_stage` unset: no passphrase is read.
Result<Opening> Prepare(const GlobalOptions& g, const KeyCache* key_cache,
                        std::optional<Stage> passphrase_stage, int* exit_code,
                        bool confirm = false) {
  if (g.repo.empty() && !UsePeers(g)) {
    *exit_code = Fail(NoRepository(), Stage::kOpenRepository);
    return NoRepository();
  }
  Opening o{.options = {}, .passphrase = SecretBuffer()};
  if (passphrase_stage) {
    Result<SecretBuffer> passphrase = ObtainPassphrase(
        {.file = g.passphrase_file, .env = "SPARETIME_PASSPHRASE",
         .prompt = confirm ? "New passphrase: " : "Passphrase: ", .confirm = confirm});
    if (!passphrase.ok()) {
      // missing, unreadable, group-readable, no tty: exit 2 (docs/cli.md)
      *exit_code = FailAs(passphrase.status(), kExitUsage);
      return passphrase.status();
    }
    o.passphrase = std::move(*passphrase);
  }
  o.options.key_cache = key_cache;
  if (!g.quiet) o.options.on_warning = PrintWarning;
  if (!UsePeers(g)) {
    if (!g.host.empty()) {
      Status st = InvalidArgument("--host reads another agent's backups from the peers: use "
                                  "--config, not --repo");
      *exit_code = Fail(st, Stage::kOpenRepository);
      return st;
    }
    o.options.where = ops::LocalRepository{g.repo};
    return o;
  }
  ST_ASSIGN_OR_RETURN(AgentContext ctx, LoadAgentContext(g, exit_code));
  o.options.where = ops::AgentPeers{.config = std::move(ctx.config),
                                    .view = std::move(ctx.state.view),
                                    .identity = nullptr,
                                    .host = g.host};
  return o;
}

}  // namespace

Result<std::unique_ptr<ops::Backups>> OpenBackups(const GlobalOptions& g, int* exit_code) {
  std::unique_ptr<KeyCache> cache = KeyCacheFor(g);
  ST_ASSIGN_OR_RETURN(Opening o, Prepare(g, cache.get(), Stage::kOpenRepository, exit_code));
  Result<std::unique_ptr<ops::Backups>> backups = ops::Open(o.options, o.passphrase);
  if (!backups.ok()) *exit_code = Fail(backups.status(), Stage::kOpenRepository);
  return backups;
}

Status InitBackups(const GlobalOptions& g, const ops::InitSettings& settings, KdfLimits limits,
                   int* exit_code) {
  std::unique_ptr<KeyCache> cache = KeyCacheFor(g);
  ST_ASSIGN_OR_RETURN(Opening o, Prepare(g, cache.get(), Stage::kWork, exit_code, /*confirm=*/true));
  Status st = ops::Init(o.options, o.passphrase, settings, limits);
  if (!st.ok()) *exit_code = Fail(st, Stage::kWork);
  return st;
}

Result<BackupsTarget> TargetOf(const GlobalOptions& g, int* exit_code) {
  BackupsTarget t;
  t.cache = KeyCacheFor(g);
  ST_ASSIGN_OR_RETURN(Opening o, Prepare(g, t.cache.get(), std::nullopt, exit_code));
  t.options = std::move(o.options);
  return t;
}

void PrintWarnings(const GlobalOptions& g, const std::vector<ops::Warning>& warnings) {
  if (g.quiet) return;
  for (const ops::Warning& w : warnings) PrintWarning(w);
}

}  // namespace sparetime::cli
