// `sparetime peers` / `sparetime policy`: load sparetime.conf, read the
// directory through the cached DirectoryClient, and explain the result —
// which agents are peers and why the others are not, which policy value came
// from which entry. When the directory is unreachable they show the cached
// copy and say so (exit 0); with no cache they fail with kExitUnavailable.
#include "directory_commands.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <span>
#include <nlohmann/json.hpp>

#include "agent_context.h"
#include "sparetime/ops/peer_gc.h"
#include "exit_codes.h"
#include "format.h"
#include "sparetime/base/clock.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/client.h"
#include "sparetime/directory/policy.h"
#include "sparetime/peer/peer_client.h"
#include "sparetime/transport/identity.h"

namespace sparetime::cli {
namespace {

namespace dir = sparetime::directory;
using std::chrono::seconds;

std::string IsoTime(dir::TimePoint t) { return cli::IsoTime(ToUnixSeconds(t)); }

std::string KeyBase64(const dir::PublicKey& key) {
  return transport::PublicKey::FromBytes(std::as_bytes(std::span(key))).ToBase64();
}

void PrintSource(const dir::DirectoryState& state) {
  if (state.from_cache) {
    std::printf("directory: %s UNREACHABLE (%s)\n  showing the cached copy read %s\n",
                state.source.c_str(), state.cache_reason.c_str(),
                IsoTime(state.fetched_at).c_str());
  } else {
    std::printf("directory: %s (read %s)\n", state.source.c_str(),
                IsoTime(state.fetched_at).c_str());
  }
}

nlohmann::json SourceJson(const dir::DirectoryState& state) {
  return {{"source", state.source},
          {"fetched_at", IsoTime(state.fetched_at)},
          {"from_cache", state.from_cache},
          {"cache_reason", state.cache_reason}};
}

// Why an agent of the view is not among the live peers.
std::string NotPeerReason(const dir::AgentRecord& a, const std::string& self, dir::TimePoint now,
                          seconds max_age) {
  if (dir::EqualsIgnoreCase(a.name, self)) return "this host";
  if (!a.last_seen) return "never sent a heartbeat";
  auto age = std::chrono::duration_cast<seconds>(now - *a.last_seen);
  return "last seen " + Age(age.count()) + ", more than " + std::to_string(max_age.count() / 60) +
         " min (sparetimePeerMaxAgeMinutes)";
}

struct Probe {
  bool reachable = false;
  std::string error;
  double millis = 0;  // connect + handshake + stats round trip
  transport::StatsReply stats;
};

// A session to `p` as this agent, and its stats for us.
Probe ProbePeer(const dir::AgentRecord& p, const transport::Identity& me) {
  Probe out;
  auto start = std::chrono::steady_clock::now();
  peer::PeerEndpoint endpoint{p.name, p.address, p.port,
                              transport::PublicKey::FromBytes(std::as_bytes(std::span(p.public_key)))};
  peer::PeerClientOptions options;
  options.connect_timeout = std::chrono::seconds(3);
  options.handshake_timeout = std::chrono::seconds(5);
  options.io_timeout = std::chrono::seconds(5);
  Result<std::unique_ptr<peer::PeerClient>> client = peer::PeerClient::Connect(endpoint, me, options);
  Result<transport::StatsReply> stats =
      client.ok() ? (*client)->Stats() : Result<transport::StatsReply>(client.status());
  out.millis = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                   .count();
  if (!stats.ok()) {
    out.error = stats.status().message();
    return out;
  }
  (*client)->Close().IgnoreError();
  out.reachable = true;
  out.stats = *stats;
  return out;
}

}  // namespace

int RunPeers(const GlobalOptions& g, bool probe) {
  int exit_code = kExitOk;
  Result<AgentContext> loaded = LoadAgentContext(g, &exit_code);
  if (!loaded.ok()) return exit_code;
  const dir::DirectoryState& state = loaded->state;
  const std::string& self = loaded->config.name;
  dir::EffectivePolicy policy = dir::ResolvePolicy(state.view, self);
  seconds max_age(int64_t{policy.peer_max_age_minutes} * 60);
  dir::TimePoint now = SystemClock().WallNow();
  std::vector<dir::AgentRecord> peers = dir::LivePeers(state.view, self, now, max_age);
  std::map<std::string, Probe> probes;
  if (probe) {
    std::string key_path = loaded->config.state_dir + "/identity.key";
    Result<transport::Identity> me = transport::Identity::Load(key_path);
    if (!me.ok()) {
      return Fail(me.status().WithContext("--probe needs this agent's identity key (run "
                                          "sparetimed once, as the same user)"),
                  Stage::kWork);
    }
    for (const auto& p : peers) probes[p.name] = ProbePeer(p, *me);
  }
  auto is_peer = [&](const dir::AgentRecord& a) {
    for (const auto& p : peers) {
      if (p.dn == a.dn) return true;
    }
    return false;
  };

  if (g.json) {
    nlohmann::json out = SourceJson(state);
    out["self"] = self;
    out["max_age_seconds"] = max_age.count();
    out["peers"] = nlohmann::json::array();
    out["not_peers"] = nlohmann::json::array();
    for (const auto& a : state.view.agents) {
      if (is_peer(a)) {
        out["peers"].push_back({{"name", a.name},
                                {"dn", a.dn},
                                {"address", a.address},
                                {"port", a.port},
                                {"site", a.site},
                                {"capacity", a.capacity},
                                {"free", a.free},
                                {"last_seen", IsoTime(*a.last_seen)},
                                {"version", a.version},
                                {"public_key", KeyBase64(a.public_key)}});
        if (probe) {
          const Probe& pr = probes[a.name];
          out["peers"].back()["probe"] = {{"reachable", pr.reachable},
                                          {"error", pr.error},
                                          {"milliseconds", pr.millis},
                                          {"held_bytes", pr.stats.used_bytes},
                                          {"held_chunks", pr.stats.chunk_count},
                                          {"quota_bytes", pr.stats.quota_bytes},
                                          {"free_bytes", pr.stats.free_bytes}};
        }
      } else {
        out["not_peers"].push_back(
            {{"name", a.name}, {"dn", a.dn}, {"reason", NotPeerReason(a, self, now, max_age)}});
      }
    }
    out["warnings"] = state.view.warnings;
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }

  PrintSource(state);
  std::printf("this host: %s; peers are agents seen within %lld min\n\n", self.c_str(),
              static_cast<long long>(max_age.count() / 60));
  if (peers.empty()) {
    std::printf("no live peers\n");
  } else {
    std::printf("%-20s %-28s %-14s %-22s %-10s %s\n", "NAME", "ADDRESS", "SITE", "FREE/OFFERED",
                "SEEN", "KEY");
    for (const auto& p : peers) {
      std::string address = p.address + ":" + std::to_string(p.port);
      std::string space = HumanBytes(p.free) + "/" + HumanBytes(p.capacity);
      std::string seen = Age(std::chrono::duration_cast<seconds>(now - *p.last_seen).count());
      std::printf("%-20s %-28s %-14s %-22s %-10s %.12s...\n", p.name.c_str(), address.c_str(),
                  p.site.empty() ? "-" : p.site.c_str(), space.c_str(), seen.c_str(),
                  KeyBase64(p.public_key).c_str());
      if (probe) {
        const Probe& pr = probes[p.name];
        if (pr.reachable) {
          std::printf("  reachable (%.0f ms); holds %s in %llu chunks for us, quota %s\n",
                      pr.millis, HumanBytes(pr.stats.used_bytes).c_str(),
                      static_cast<unsigned long long>(pr.stats.chunk_count),
                      HumanBytes(pr.stats.quota_bytes).c_str());
        } else {
          std::printf("  UNREACHABLE: %s\n", pr.error.c_str());
        }
      }
    }
  }
  bool header = false;
  for (const auto& a : state.view.agents) {
    if (is_peer(a)) continue;
    if (!header) std::printf("\nnot peers:\n");
    header = true;
    std::printf("  %-20s %s\n", a.name.c_str(), NotPeerReason(a, self, now, max_age).c_str());
  }
  if (!state.view.warnings.empty()) {
    std::printf("\nleft out (malformed entries):\n");
    for (const auto& w : state.view.warnings) std::printf("  %s\n", w.c_str());
  }
  return kExitOk;
}

int RunPolicy(const GlobalOptions& g, const std::string& host) {
  int exit_code = kExitOk;
  Result<AgentContext> loaded = LoadAgentContext(g, &exit_code);
  if (!loaded.ok()) return exit_code;
  const dir::DirectoryState& state = loaded->state;
  dir::EffectivePolicy p =
      dir::ResolvePolicy(state.view, host.empty() ? loaded->config.name : host);

  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
  };
  std::vector<std::string> windows;
  for (const auto& w : p.windows) windows.push_back(w.text);
  // Attribute name -> value as shown; the order is the schema's.
  const std::vector<std::pair<std::string, nlohmann::json>> values = {
      {"sparetimeDevice", p.devices},
      {"sparetimeIdleMinutes", p.idle_minutes},
      {"sparetimeIdleCpuPercent", p.idle_cpu_percent},
      {"sparetimeIdleIoPressurePercent", p.idle_io_pressure_percent},
      {"sparetimeWindow", windows},
      {"sparetimeAcOnly", p.ac_only},
      {"sparetimeReplicas", p.replicas},
      {"sparetimeKeepLast", p.keep_last},
      {"sparetimeKeepDaily", p.keep_daily},
      {"sparetimeKeepWeekly", p.keep_weekly},
      {"sparetimeKeepMonthly", p.keep_monthly},
      {"sparetimeBandwidthLimit", p.bandwidth_limit},
      {"sparetimeCompressionLevel", p.compression_level},
      {"sparetimeChunkSize", p.chunk_size},
      {"sparetimeConsistencyMode", p.consistency_mode},
      {"sparetimeMaxFreezeSeconds", p.max_freeze_seconds},
      {"sparetimeSnapshotSize", p.snapshot_size},
      {"sparetimeMigrationAllowed", p.migration_allowed},
      {"sparetimeMigrationFrom", p.migration_from},
      {"sparetimeMigrationPrivileged", p.migration_privileged},
      {"sparetimeEscrowPublicKey",
       p.escrow_public_key ? nlohmann::json(KeyBase64(*p.escrow_public_key)) : nlohmann::json()},
      {"sparetimePeerMaxAgeMinutes", p.peer_max_age_minutes},
      {"sparetimeMaxAge", std::to_string(p.max_age_seconds) + " s"},
      {"sparetimePeerGraceDays", p.peer_grace_days},
      {"sparetimeDepartedGraceDays", p.departed_grace_days},
      {"sparetimeCaretakerAfterMinutes", p.caretaker_after_minutes},
  };
  auto source = [&](const std::string& attr) {
    auto it = p.source.find(attr);
    return it == p.source.end() ? std::string("built-in default") : it->second;
  };

  if (g.json) {
    nlohmann::json out = SourceJson(state);
    out["host"] = p.host;
    out["applied"] = p.applied;
    out["warnings"] = p.warnings;
    out["entry_warnings"] = state.view.warnings;
    nlohmann::json settings = nlohmann::json::object();
    for (const auto& [attr, value] : values) {
      settings[attr] = {{"value", value}, {"source", source(attr)}};
    }
    out["settings"] = settings;
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }

  PrintSource(state);
  std::printf("effective policy for %s\n", p.host.c_str());
  std::printf("applied (lowest precedence first): %s\n\n",
              p.applied.empty() ? "none (built-in defaults only)" : join(p.applied).c_str());
  for (const auto& [attr, value] : values) {
    std::string shown;
    if (value.is_array()) {
      std::vector<std::string> items;
      for (const auto& v : value) items.push_back(v.get<std::string>());
      shown = items.empty() ? "(none)" : join(items);
    } else if (value.is_null()) {
      shown = "(none)";
    } else if (value.is_string()) {
      shown = value.get<std::string>();
    } else {
      shown = value.dump();
    }
    std::printf("  %-32s %-30s from %s\n", attr.c_str(), shown.c_str(), source(attr).c_str());
  }
  for (const auto& w : p.warnings) std::printf("warning: %s\n", w.c_str());
  for (const auto& w : state.view.warnings) std::printf("left out: %s\n", w.c_str());
  return kExitOk;
}

int RunOrphans(const GlobalOptions& g) {
  int exit_code = kExitOk;
  Result<AgentContext> loaded = LoadAgentContext(g, &exit_code);
  if (!loaded.ok()) return exit_code;
  Result<std::vector<peerstore::Orphan>> orphans =
      ops::ListOrphans(loaded->config, loaded->state);
  if (!orphans.ok()) return Fail(orphans.status(), Stage::kWork);
  const dir::EffectivePolicy policy = dir::ResolvePolicy(loaded->state.view, loaded->config.name);
  const int64_t grace = int64_t{policy.departed_grace_days} * 86400;
  if (g.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& o : *orphans) {
      out.push_back({{"owner", o.owner}, {"bytes", o.bytes}, {"since", o.since},
                     {"deleted_after", o.since + grace}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  if (orphans->empty()) {
    std::printf("no data held for owners gone from the directory\n");
    return kExitOk;
  }
  std::printf("%-24s %14s  %-20s  %s\n", "OWNER", "BYTES", "GONE SINCE (UTC)", "DELETED AFTER");
  auto utc = [](int64_t t) {
    char buf[32];
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
    return std::string(buf);
  };
  for (const auto& o : *orphans) {
    std::printf("%-24s %14llu  %-20s  %s\n", o.owner.c_str(),
                static_cast<unsigned long long>(o.bytes), utc(o.since).c_str(),
                utc(o.since + grace).c_str());
  }
  std::printf("\n(sparetimeDepartedGraceDays %u; `sparetime peers --purge OWNER` deletes one "
              "now)\n", policy.departed_grace_days);
  return kExitOk;
}

int RunPurge(const GlobalOptions& g, const std::string& host) {
  int exit_code = kExitOk;
  Result<AgentContext> loaded = LoadAgentContext(g, &exit_code);
  if (!loaded.ok()) return exit_code;
  if (Status s = ops::PurgeOrphan(loaded->config, loaded->state, host); !s.ok()) {
    const ErrorCode c = s.code();
    return FailAs(s, c == ErrorCode::kInvalidArgument ? kExitUsage
                     : c == ErrorCode::kUnavailable   ? kExitUnavailable
                                                      : kExitFailure);
  }
  std::printf("deleted everything held for %s; sparetimed frees its quota at its next directory "
              "read\n", host.c_str());
  return kExitOk;
}

}  // namespace sparetime::cli
