// `sparetime fleet` (fleet_command.h): parses nothing beyond the global
// options, calls ops::Fleet, prints text or JSON.
#include "fleet_command.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent_context.h"
#include "exit_codes.h"
#include "format.h"
#include "sparetime/base/clock.h"
#include "sparetime/ops/fleet.h"

namespace sparetime::cli {
namespace {

std::string AgoOrNever(int64_t now, int64_t t) { return t > 0 ? Age(now - t) : "never"; }

nlohmann::json HostJson(const ops::FleetHost& h) {
  nlohmann::json devices = nlohmann::json::array();
  for (const ops::FleetDevice& d : h.devices) {
    devices.push_back({{"device", d.state.device},
                       {"last_success", d.state.time},
                       {"age_seconds", d.age_seconds},
                       {"overdue", d.overdue},
                       {"snapshot", d.state.snapshot},
                       {"size", d.state.size},
                       {"seconds", d.state.seconds},
                       {"stored", d.state.stored},
                       {"forced", d.state.forced}});
  }
  nlohmann::json out = {{"name", h.name},
                        {"last_seen", h.last_seen},
                        {"capacity", h.capacity},
                        {"free", h.free},
                        {"max_age_seconds", h.max_age_seconds},
                        {"policy_devices", h.policy_devices},
                        {"published", h.published},
                        {"overdue", h.overdue},
                        {"devices", devices}};
  if (h.health) {
    out["replicas"] = h.health->replicas;
    out["chunks_replicated"] = h.health->healthy;
    out["chunks_under_replicated"] = h.health->under_replicated;
    out["last_verify"] = h.health->last_verify;
    out["last_error"] = h.health->last_error;
    out["last_error_time"] = h.health->last_error_time;
  }
  return out;
}

void PrintHost(const ops::FleetHost& h, int64_t now) {
  std::printf("%s%s: seen %s, offers %s free of %s\n", h.name.c_str(),
              h.overdue ? " OVERDUE" : "", AgoOrNever(now, h.last_seen).c_str(),
              HumanBytes(h.free).c_str(), HumanBytes(h.capacity).c_str());
  if (!h.published) {
    std::printf("  no backup state published (an agent older than this one, or no heartbeat "
                "since its first job)\n");
    return;
  }
  for (const ops::FleetDevice& d : h.devices) {
    if (d.state.time <= 0) {
      std::printf("  %s: never backed up, OVERDUE (max age %s)\n", d.state.device.c_str(),
                  Span(h.max_age_seconds).c_str());
      continue;
    }
    std::printf("  %s: last good %s (snapshot %.8s, %s, %llu s%s)%s\n",
                d.state.device.c_str(), Age(d.age_seconds).c_str(), d.state.snapshot.c_str(),
                HumanBytes(d.state.size).c_str(),
                static_cast<unsigned long long>(d.state.seconds),
                d.state.forced ? ", run on a busy box because overdue" : "",
                d.overdue ? (", OVERDUE (max age " + Span(h.max_age_seconds) + ")").c_str() : "");
  }
  if (h.health) {
    const directory::BackupHealth& x = *h.health;
    std::printf("  replicas: %llu chunks on %u+ peers, %llu under-replicated; last verify %s%s\n",
                static_cast<unsigned long long>(x.healthy), x.replicas,
                static_cast<unsigned long long>(x.under_replicated),
                x.last_verify > 0 ? Age(now - x.last_verify).c_str() : "never",
                x.under_replicated > 0 ? " (UNDER-REPLICATED: sparetime repair)" : "");
    if (!x.last_error.empty()) {
      std::printf("  last error %s: %s\n", Age(now - x.last_error_time).c_str(),
                  x.last_error.c_str());
    }
  }
}

}  // namespace

int RunFleet(const GlobalOptions& g) {
  int exit_code = kExitOk;
  Result<AgentContext> loaded = LoadAgentContext(g, &exit_code);
  if (!loaded.ok()) return exit_code;
  const directory::DirectoryState& state = loaded->state;
  const int64_t now = ToUnixSeconds(SystemClock().WallNow());
  ops::FleetReport report = ops::Fleet(state.view, now);
  if (g.json) {
    nlohmann::json out = {{"source", state.source},
                          {"from_cache", state.from_cache},
                          {"fetched_at", ToUnixSeconds(state.fetched_at)},
                          {"now", now},
                          {"overdue_hosts", report.overdue_hosts},
                          {"warnings", report.warnings}};
    out["hosts"] = nlohmann::json::array();
    for (const ops::FleetHost& h : report.hosts) out["hosts"].push_back(HostJson(h));
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (state.from_cache) {
    std::printf("directory: %s UNREACHABLE (%s); showing the copy read %s ago\n",
                state.source.c_str(), state.cache_reason.c_str(),
                Age(now - ToUnixSeconds(state.fetched_at)).c_str());
  } else {
    std::printf("directory: %s\n", state.source.c_str());
  }
  std::printf("%zu host(s), %zu overdue\n", report.hosts.size(), report.overdue_hosts);
  for (const ops::FleetHost& h : report.hosts) PrintHost(h, now);
  for (const std::string& w : report.warnings) {
    std::fprintf(stderr, "sparetime: warning: left out: %s\n", w.c_str());
  }
  return kExitOk;
}

}  // namespace sparetime::cli
