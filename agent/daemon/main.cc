// `sparetimed`: the agent process. Reads sparetime.conf, loads (or creates)
// the agent's identity key in the state directory, opens the directory with
// its cache, serves its peer store to the other agents, and runs the agent
// loop until SIGTERM/SIGINT. Runs in the
// foreground; under systemd it reports readiness, status and watchdog pings
// through sd_notify. Exit codes: 0 stopped cleanly, 2 bad command line,
// 9 bad configuration or state directory (systemd does not restart it),
// 1 anything else (e.g. the listen port is taken).
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <thread>
#include <cstdio>
#include <cstring>

#include "agent_loop.h"
#include "journal_log.h"
#include "migration_service.h"
#include "sparetime/base/allocator.h"
#include "sparetime/base/fd.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/client.h"
#include "sparetime/ops/signals.h"
#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/peerstore/read_holds.h"
#include "sparetime/privsep/helper.h"
#include "sparetime/transport/identity.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void OnSignal(int) { g_stop.store(true); }
void OnHangup(int) { g_reload.store(true); }

constexpr int kExitConfig = 9;

int Fail(const std::string& message, int code) {
  sparetime::daemon::Log(sparetime::Priority::kErr, message);
  return code;
}

uid_t g_owner_uid = 0;
gid_t g_owner_gid = 0;
int ChownEntry(const char* path, const struct stat*, int, struct FTW*) {
  return ::lchown(path, g_owner_uid, g_owner_gid) == 0 ? 0 : -1;
}

// The state directory (and what is in it) belongs to the unprivileged user.
sparetime::Status GiveStateDir(const std::string& dir, const std::string& user) {
  struct passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) {
    return sparetime::NotFound("no user " + user +
                               " on this system: create it (the package does: "
                               "systemd-sysusers /usr/lib/sysusers.d/sparetime.conf)");
  }
  g_owner_uid = pw->pw_uid;
  g_owner_gid = pw->pw_gid;
  if (::nftw(dir.c_str(), ChownEntry, 16, FTW_PHYS) != 0) {
    return sparetime::ErrnoStatus("handing " + dir + " to " + user, errno);
  }
  return sparetime::Status::Ok();
}

int Main(int argc, char** argv) {
  using namespace sparetime;
  CLI::App app{"sparetimed: the sparetime agent"};
  std::string config_path = "/etc/sparetime/sparetime.conf";
  app.add_option("--config", config_path, "configuration file")->envname("SPARETIME_CONFIG");
  std::string user;
  app.add_option("--user", user,
                 "run as this user, with a privileged helper that opens the devices of "
                 "[backup] devices (privilege separation; the systemd unit passes sparetime)")
      ->envname("SPARETIME_USER");
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
  // Privilege separation, before any thread exists (fork).
  std::unique_ptr<privsep::HelperClient> helper;
  pid_t helper_pid = -1;
  if (!user.empty()) {
    privsep::HelperPolicy policy;
    policy.allowed_devices = [config_path]() -> Result<std::vector<std::string>> {
      ST_ASSIGN_OR_RETURN(config::AgentConfig c, config::LoadConfig(config_path));
      return c.devices;
    };
    policy.log = [](int priority, const std::string& line) {
      daemon::Log(static_cast<Priority>(priority), line);
    };
    if (Status s = GiveStateDir(config->state_dir, user); !s.ok()) {
      return Fail(s.message(), s.code() == ErrorCode::kNotFound ? kExitConfig : 1);
    }
    Result<privsep::HelperProcess> started = privsep::StartHelper(policy);
    if (!started.ok()) return Fail(started.status().message(), 1);
    helper_pid = started->pid;
    helper = std::make_unique<privsep::HelperClient>(std::move(started->socket));
    if (Status s = privsep::DropPrivileges(user); !s.ok()) {
      return Fail("privilege drop: " + s.message(), kExitConfig);
    }
    daemon::LogInfo("running as " + user + " (uid " + std::to_string(::getuid()) +
                    "), privileged helper pid " + std::to_string(helper_pid));
  }
  DeviceOpener open_device;
  if (helper) {
    open_device = [&helper](const std::string& path,
                            DeviceOpenOptions options) -> Result<std::unique_ptr<BlockDevice>> {
      ST_ASSIGN_OR_RETURN(privsep::DeviceFds fds, helper->OpenDeviceRo(path, options.direct_io));
      return OpenBlockDeviceFds(path, std::move(fds.fd), std::move(fds.direct_fd));
    };
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
  struct sigaction hup {};
  hup.sa_handler = OnHangup;
  ::sigaction(SIGHUP, &hup, nullptr);

  daemon::LogInfo(config->name + " starting, key " + identity->public_key().ToBase64() +
                  ", directory " + config->directory.uri);
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
  const std::string agent_name = config->name;

  daemon::AgentLoop loop(
      std::move(*config), *identity, std::move(*client), SystemClock(),
      [](const std::string& state) { sd_notify(0, state.c_str()); },
      [&store] { return (*store)->TotalUsed(); }, open_device, store->get());
  daemon::MigrationService migration(
      state_dir, agent_name, [&loop](const std::string& source) { return loop.MigrationAllowedFrom(source); },
      [&loop](const std::string& what) { return loop.MigrationPrivilegedAllowed(what); },
      [](const std::string& line) { daemon::LogInfo(line); });
  server_options.migration = &migration;
  server_options.may_read = [&loop](const std::string& caller, const std::string& owner) {
    return loop.MayReadBackupsOf(caller, owner);
  };
  server_options.may_care_for = [&loop](const std::string& caller, const std::string& owner) {
    return loop.MayCareFor(caller, owner);
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
  loop.set_held(store->get(), holds->get());
  loop.Start();
  daemon::LogInfo("serving peers on " + server_options.listen_address + ":" +
                  std::to_string((*server)->port()));
  // The helper's end closing means it died: say so and stop (exit 1, so
  // systemd restarts the unit with a fresh helper).
  std::atomic<bool> helper_died{false};
  std::jthread helper_watch;
  if (helper) {
    helper_watch = std::jthread([&helper, &helper_died, helper_pid] {
      while (!g_stop.load()) {
        if (!helper->WaitGone(std::chrono::seconds(1))) continue;
        int status = 0;
        std::string how = "its end of the socket closed";
        if (::waitpid(helper_pid, &status, 0) == helper_pid) {
          how = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                    : "exited with status " + std::to_string(WEXITSTATUS(status));
        }
        daemon::Log(Priority::kErr, "the privileged helper (pid " + std::to_string(helper_pid) +
                                        ") is gone: " + how + "; stopping (systemd restarts "
                                        "sparetimed)");
        helper_died.store(true);
        g_stop.store(true);
        return;
      }
    });
  }
  loop.Run(g_stop, &g_reload);
  (*server)->Stop();
  if (helper_watch.joinable()) helper_watch.join();
  if (helper_died.load()) {
    daemon::Log(Priority::kErr, "stopped: the privileged helper died");
    return 1;
  }
  daemon::LogInfo("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sparetime::KeepChunkBuffers();
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    sparetime::daemon::Log(sparetime::Priority::kErr, std::string("internal error: ") + e.what());
    return 1;
  }
}
