// `sparetimed`: the agent process. Reads sparetime.conf, loads (or creates)
// the agent's identity key in the state directory, opens the directory with
// its cache, serves its peer store to the other agents, and runs the agent
// loop until SIGTERM/SIGINT. Runs in the
// foreground; under systemd it reports readiness, status and watchdog pings
// through sd_notify. Exit codes: 0 stopped cleanly, 2 bad command line,
// 9 bad configuration or state directory (systemd does not restart it),
// 1 anything else (e.g. the listen port is taken).
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstring>

#include "agent_loop.h"
#include "migration_service.h"
#include "sparetime/base/allocator.h"
#include "sparetime/base/fd.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/client.h"
#include "sparetime/ops/signals.h"
#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/peerstore/read_holds.h"
#include "sparetime/transport/identity.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

constexpr int kExitConfig = 9;

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "sparetimed: %s\n", message.c_str());
  return code;
}

int Main(int argc, char** argv) {
  using namespace sparetime;
  CLI::App app{"sparetimed: the sparetime agent"};
  std::string config_path = "/etc/sparetime/sparetime.conf";
  app.add_option("--config", config_path, "configuration file")->envname("SPARETIME_CONFIG");
  app.set_version_flag("--version", "sparetimed 0.1.0");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  Result<config::AgentConfig> config = config::LoadConfig(config_path);
  if (!config.ok()) return Fail(config.status().message(), kExitConfig);
  if (Status s = MakeDirs(config->state_dir, 0700); !s.ok()) {
    return Fail("state directory: " + s.message(), kExitConfig);
  }
  Result<transport::Identity> identity =
      transport::Identity::LoadOrCreate(config->state_dir + "/identity.key");
  if (!identity.ok()) return Fail("identity key: " + identity.status().message(), kExitConfig);

  Result<std::unique_ptr<directory::Directory>> backend =
      directory::OpenDirectory(config->directory);
  if (!backend.ok()) return Fail(backend.status().message(), kExitConfig);
  Result<std::unique_ptr<directory::DirectoryClient>> client =
      directory::DirectoryClient::Open(std::move(*backend), config->directory_cache);
  if (!client.ok()) return Fail(client.status().message(), kExitConfig);

  ops::InstallStopSignals(OnSignal);

  std::fprintf(stderr, "sparetimed: %s starting, key %s, directory %s\n", config->name.c_str(),
               identity->public_key().ToBase64().c_str(), config->directory.uri.c_str());
  Result<std::unique_ptr<peerstore::PeerStore>> store = peerstore::PeerStore::Open(
      config->state_dir + "/held", {config->capacity, config->owner_quota});
  if (!store.ok()) return Fail("peer store: " + store.status().message(), kExitConfig);
  Result<std::unique_ptr<peerstore::ReadHolds>> holds =
      peerstore::ReadHolds::Open(config->state_dir + "/read-holds", SystemClock());
  if (!holds.ok()) return Fail("peer store: " + holds.status().message(), kExitConfig);
  peer::PeerServerOptions server_options;
  server_options.holds = holds->get();
  server_options.listen_address = config->listen_address;
  server_options.port = config->listen_port;
  const std::string state_dir = config->state_dir;

  daemon::AgentLoop loop(
      std::move(*config), *identity, std::move(*client), SystemClock(),
      [](const std::string& state) { sd_notify(0, state.c_str()); },
      [&store] { return (*store)->TotalUsed(); });
  daemon::MigrationService migration(
      state_dir, [&loop](const std::string& source) { return loop.MigrationAllowedFrom(source); },
      [](const std::string& line) { std::fprintf(stderr, "sparetimed: %s\n", line.c_str()); });
  server_options.migration = &migration;
  server_options.may_read = [&loop](const std::string& caller, const std::string& owner) {
    return loop.MayReadBackupsOf(caller, owner);
  };
  Result<std::unique_ptr<peer::PeerServer>> server = peer::PeerServer::Start(
      *identity, **store,
      [&loop](const transport::PublicKey& k) -> Result<std::string> {
        directory::PublicKey dk{};
        std::memcpy(dk.data(), k.bytes.data(), dk.size());
        return loop.AgentForKey(dk);
      },
      server_options);
  // Not kExitConfig: a port still held by a previous instance is worth a retry.
  if (!server.ok()) return Fail("peer service: " + server.status().message(), 1);
  loop.set_listen_port((*server)->port());
  loop.Start();
  std::fprintf(stderr, "sparetimed: serving peers on %s:%u\n",
               server_options.listen_address.c_str(), static_cast<unsigned>((*server)->port()));
  loop.Run(g_stop);
  (*server)->Stop();
  std::fprintf(stderr, "sparetimed: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sparetime::KeepChunkBuffers();
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparetimed: internal error: %s\n", e.what());
    return 1;
  }
}
