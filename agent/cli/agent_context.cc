// LoadAgentContext: sparetime.conf, then the directory through the cached
// DirectoryClient (see agent_context.h).
#include "agent_context.h"

#include <sys/stat.h>
#include <unistd.h>

#include "exit_codes.h"

namespace sparetime::cli {

std::string ConfigPath(const GlobalOptions& g) {
  return g.config.empty() ? kDefaultConfigPath : g.config;
}

bool UsesAgentConfig(const GlobalOptions& g) {
  return !g.config.empty() || (g.repo.empty() && ::access(kDefaultConfigPath, F_OK) == 0);
}

// Config, then the directory (or its cache). The cache lives in the state
// directory; a CLI run on a box where that directory does not exist yet
// reads the directory without one.
Result<AgentContext> LoadAgentContext(const GlobalOptions& g, int* exit_code) {
  Result<config::AgentConfig> config = config::LoadConfig(ConfigPath(g));
  if (!config.ok()) {
    *exit_code = Fail(config.status().code() == ErrorCode::kNotFound
                          ? Status(ErrorCode::kNotFound,
                                   config.status().message() +
                                       " (pass --config FILE or set SPARETIME_CONFIG; see "
                                       "docs/configuration.md)")
                          : config.status(),
                      Stage::kConfig);
    return config.status();
  }
  Result<std::unique_ptr<directory::Directory>> backend = directory::OpenDirectory(config->directory);
  if (!backend.ok()) {
    *exit_code = Fail(backend.status(), Stage::kConfig);
    return backend.status();
  }
  std::string cache = config->directory_cache;
  struct stat st {};
  std::string cache_dir = cache.substr(0, cache.find_last_of('/'));
  if (::stat(cache_dir.c_str(), &st) != 0) cache.clear();
  Result<std::unique_ptr<directory::DirectoryClient>> client =
      directory::DirectoryClient::Open(std::move(*backend), cache);
  if (!client.ok()) {
    *exit_code = Fail(client.status(), Stage::kWork);
    return client.status();
  }
  Result<directory::DirectoryState> state = (*client)->Refresh();
  if (!state.ok()) {
    *exit_code = Fail(state.status(), Stage::kWork);
    return state.status();
  }
  return AgentContext{std::move(*config), std::move(*state)};
}

}  // namespace sparetime::cli
