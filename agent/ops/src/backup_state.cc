// ops::BackupState and the metrics file (backup_state.h).
#include "sparetime/ops/backup_state.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/replication/chunk_locations.h"

namespace sparetime::ops {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A label value: backslash, double quote and newline escaped (exposition format).
std::string Label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

class Exposition {
 public:
  void Family(const char* name, const char* help) {
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
  }
  void Sample(const char* name, const std::string& labels, int64_t value) {
    out_ += std::string(name) + "{" + labels + "} " + std::to_string(value) + "\n";
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

Result<BackupStateReport> BackupState(const BackupStateRequest& request) {
  BackupStateReport report;
  const std::string dir = request.state_dir + "/backup";
  std::vector<Snapshot> snapshots;  // newest first
  if (Exists(dir + "/catalog.db")) {
    ST_ASSIGN_OR_RETURN(std::unique_ptr<Catalog> catalog, Catalog::Open(dir + "/catalog.db"));
    ST_ASSIGN_OR_RETURN(snapshots, catalog->ListSnapshots());
  }
  for (const std::string& device : request.devices) {
    directory::DeviceBackupState s;
    s.device = device;
    for (const Snapshot& snap : snapshots) {
      if (snap.device.path != device) continue;
      s.time = snap.time;
      s.size = snap.size;
      s.snapshot = snap.id;
      s.seconds = static_cast<uint64_t>(std::llround(std::max(0.0, snap.stats.seconds)));
      s.stored = snap.stats.stored_bytes;
      s.forced = request.forced.contains(device);
      break;
    }
    report.devices.push_back(std::move(s));
  }
  directory::BackupHealth& h = report.health;
  h.replicas = request.replicas;
  if (Exists(dir + "/locations.db")) {
    ST_ASSIGN_OR_RETURN(auto locations, replication::ChunkLocations::Open(dir + "/locations.db"));
    ST_ASSIGN_OR_RETURN(auto counts, locations->ReplicaCounts(request.replicas));
    h.healthy = counts.first;
    h.under_replicated = counts.second;
  }
  h.last_verify = request.last_verify;
  h.last_error = request.last_error;
  h.last_error_time = request.last_error_time;
  return report;
}

std::string MetricsText(const std::string& host, const BackupStateReport& report, int64_t now,
                        int64_t max_age_seconds) {
  Exposition e;
  const std::string h = "host=\"" + Label(host) + "\"";
  auto per_device = [&](const char* name, const char* help, auto value) {
    e.Family(name, help);
    for (const directory::DeviceBackupState& d : report.devices) {
      e.Sample(name, h + ",device=\"" + Label(d.device) + "\"", value(d));
    }
  };
  using D = directory::DeviceBackupState;
  per_device("sparetime_last_success_timestamp_seconds",
             "Unix time of the device's last successful backup (0: never).",
             [](const D& d) { return d.time; });
  per_device("sparetime_last_backup_size_bytes", "Bytes imaged by the last successful backup.",
             [](const D& d) { return static_cast<int64_t>(d.size); });
  per_device("sparetime_last_backup_duration_seconds",
             "Seconds the last successful backup took.",
             [](const D& d) { return static_cast<int64_t>(d.seconds); });
  per_device("sparetime_last_backup_stored_bytes",
             "Sealed bytes the last successful backup sent to the peers.",
             [](const D& d) { return static_cast<int64_t>(d.stored); });
  per_device("sparetime_overdue",
             "1 when the last success is older than the policy's sparetimeMaxAge (or never).",
             [&](const D& d) { return int64_t{directory::IsOverdue(d, now, max_age_seconds)}; });
  per_device("sparetime_last_backup_forced",
             "1 when the last success ran on a busy box because the device was overdue.",
             [](const D& d) { return int64_t{d.forced}; });
  e.Family("sparetime_max_age_seconds", "The policy's sparetimeMaxAge.");
  e.Sample("sparetime_max_age_seconds", h, max_age_seconds);
  e.Family("sparetime_chunks_replicated", "Chunks recorded on at least the policy's replica count of peers.");
  e.Sample("sparetime_chunks_replicated", h, static_cast<int64_t>(report.health.healthy));
  e.Family("sparetime_chunks_under_replicated", "Chunks recorded on fewer peers than the policy's replica count.");
  e.Sample("sparetime_chunks_under_replicated", h, static_cast<int64_t>(report.health.under_replicated));
  e.Family("sparetime_last_verify_timestamp_seconds", "Unix time of the last successful verify (0: never).");
  e.Sample("sparetime_last_verify_timestamp_seconds", h, report.health.last_verify);
  e.Family("sparetime_last_error_timestamp_seconds", "Unix time of the last failed job (0: none).");
  e.Sample("sparetime_last_error_timestamp_seconds", h, report.health.last_error_time);
  return e.Take();
}

Status WriteMetrics(const std::string& dir, const std::string& text) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return NotFound("the metrics directory " + dir +
                    " does not exist (node_exporter's textfile collector: apt install "
                    "prometheus-node-exporter, or set [metrics] textfile_dir in sparetime.conf, "
                    "empty to write no metrics)");
  }
  return WriteFileAtomic(dir + "/sparetime.prom", text, 0644);
}

}  // namespace sparetime::ops
