// status.json read/write: JSON via nlohmann, written with WriteFileAtomic.
#include "sparetime/config/status_file.h"

#include <nlohmann/json.hpp>

#include "sparetime/base/fd.h"
#include "sparetime/base/json_numbers.h"

namespace sparetime::config {

namespace {

nlohmann::json IdleJson(const IdleStatus& i) {
  return {{"known", i.known},
          {"idle", i.idle},
          {"since", i.since},
          {"reasons", i.reasons},
          {"warnings", i.warnings}};
}

nlohmann::json JobsJson(const std::vector<JobStatus>& jobs) {
  nlohmann::json out = nlohmann::json::array();
  for (const JobStatus& j : jobs) {
    out.push_back({{"name", j.name},
                   {"state", j.state},
                   {"since", j.since},
                   {"bytes_done", j.bytes_done},
                   {"bytes_total", j.bytes_total},
                   {"pauses", j.pauses},
                   {"detail", j.detail}});
  }
  return out;
}

nlohmann::json HeldJson(const std::vector<HeldStatus>& held) {
  nlohmann::json out = nlohmann::json::array();
  for (const HeldStatus& h : held) {
    out.push_back({{"owner", h.owner},
                   {"chunks", h.chunks},
                   {"live_bytes", h.live_bytes},
                   {"record_bytes", h.record_bytes},
                   {"disk_bytes", h.disk_bytes},
                   {"last_scrub", h.last_scrub},
                   {"scrub_passes", h.scrub_passes},
                   {"scrub_in_progress", h.scrub_in_progress},
                   {"damaged", h.damaged}});
  }
  return out;
}

// Files written before issue 21 have no "held": not an error.
void ReadHeld(const nlohmann::json& j, AgentStatus* s) {
  if (!j.contains("held")) return;
  for (const auto& h : j.at("held")) {
    s->held.push_back({h.at("owner").get<std::string>(), h.at("chunks").get<uint64_t>(),
                       h.at("live_bytes").get<uint64_t>(), h.at("record_bytes").get<uint64_t>(),
                       h.at("disk_bytes").get<uint64_t>(), h.at("last_scrub").get<int64_t>(),
                       h.at("scrub_passes").get<uint64_t>(), h.at("scrub_in_progress").get<bool>(),
                       h.at("damaged").get<uint64_t>()});
  }
}

// Files written before the scheduler section existed have none: not an error.
void ReadIdle(const nlohmann::json& j, AgentStatus* s) {
  if (j.contains("idle")) {
    const auto& i = j.at("idle");
    s->idle.known = i.at("known").get<bool>();
    s->idle.idle = i.at("idle").get<bool>();
    s->idle.since = i.at("since").get<int64_t>();
    s->idle.reasons = i.at("reasons").get<std::vector<std::string>>();
    s->idle.warnings = i.at("warnings").get<std::vector<std::string>>();
  }
  if (j.contains("jobs")) {
    for (const auto& job : j.at("jobs")) {
      s->jobs.push_back({job.at("name").get<std::string>(), job.at("state").get<std::string>(),
                         job.at("since").get<int64_t>(), job.at("bytes_done").get<uint64_t>(),
                         job.at("bytes_total").get<uint64_t>(), job.at("pauses").get<int>(),
                         job.at("detail").get<std::string>()});
    }
  }
}

// The backup section: each device as its fleet attribute's JSON object (one
// codec: directory/fleet_state.h), so status.json and the directory agree.
nlohmann::json BackupsJson(const AgentStatus& s) {
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& d : s.backups) devices.push_back(nlohmann::json::parse(directory::EncodeDeviceState(d)));
  return {{"max_age_seconds", s.max_age_seconds},
          {"devices", devices},
          {"health", nlohmann::json::parse(directory::EncodeBackupHealth(s.backup_health))},
          {"error", s.backup_state_error}};
}

Status ReadBackups(const nlohmann::json& j, AgentStatus* s) {
  if (!j.contains("backups")) return Status::Ok();  // an older sparetimed
  const auto& b = j.at("backups");
  s->backups_known = true;
  s->max_age_seconds = b.at("max_age_seconds").get<int64_t>();
  for (const auto& d : b.at("devices")) {
    ST_ASSIGN_OR_RETURN(directory::DeviceBackupState state, directory::ParseDeviceState(d.dump()));
    s->backups.push_back(std::move(state));
  }
  ST_ASSIGN_OR_RETURN(s->backup_health, directory::ParseBackupHealth(b.at("health").dump()));
  s->backup_state_error = b.at("error").get<std::string>();
  return Status::Ok();
}

}  // namespace

std::string StatusPath(const std::string& state_dir) { return state_dir + "/status.json"; }

Status WriteStatus(const std::string& path, const AgentStatus& s) {
  nlohmann::json j = {
      {"agent", s.agent},
      {"pid", s.pid},
      {"pid_namespace", s.pid_namespace},
      {"ns_pids", s.ns_pids},
      {"started", s.started},
      {"updated", s.updated},
      {"directory",
       {{"source", s.directory_source},
        {"fetched_at", s.directory_fetched_at},
        {"from_cache", s.directory_from_cache},
        {"error", s.directory_error},
        {"warnings", s.directory_warnings}}},
      {"registration",
       {{"ok", s.registered}, {"at", s.registered_at}, {"error", s.registration_error},
        {"site_warning", s.site_warning}}},
      {"peers", s.peers},
      {"policy", {{"applied", s.policy_applied}, {"warnings", s.policy_warnings}}},
      {"idle", IdleJson(s.idle)},
      {"jobs", JobsJson(s.jobs)},
      {"held", HeldJson(s.held)},
  };
  if (s.backups_known) j["backups"] = BackupsJson(s);
  return WriteFileAtomic(path, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                         0644);
}

Result<AgentStatus> ReadStatus(const std::string& path) {
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseStatus(text, path);
}

Result<AgentStatus> ParseStatus(std::string_view text, const std::string& path) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    ST_RETURN_IF_ERROR(CheckJsonIntegers(j, path));
    AgentStatus s;
    s.agent = j.at("agent").get<std::string>();
    s.pid = j.at("pid").get<int64_t>();
    s.pid_namespace = j.value("pid_namespace", std::string());
    s.ns_pids = j.value("ns_pids", std::vector<int64_t>());
    s.started = j.at("started").get<int64_t>();
    s.updated = j.at("updated").get<int64_t>();
    const auto& d = j.at("directory");
    s.directory_source = d.at("source").get<std::string>();
    s.directory_fetched_at = d.at("fetched_at").get<int64_t>();
    s.directory_from_cache = d.at("from_cache").get<bool>();
    s.directory_error = d.at("error").get<std::string>();
    s.directory_warnings = d.at("warnings").get<std::vector<std::string>>();
    const auto& r = j.at("registration");
    s.registered = r.at("ok").get<bool>();
    s.registered_at = r.at("at").get<int64_t>();
    s.registration_error = r.at("error").get<std::string>();
    s.site_warning = r.value("site_warning", std::string());
    s.peers = j.at("peers").get<std::vector<std::string>>();
    s.policy_applied = j.at("policy").at("applied").get<std::vector<std::string>>();
    s.policy_warnings = j.at("policy").at("warnings").get<std::vector<std::string>>();
    ReadIdle(j, &s);
    if (Status b = ReadBackups(j, &s); !b.ok()) {
      return Status(ErrorCode::kCorruption, path + ": backups: " + b.message());
    }
    ReadHeld(j, &s);
    return s;
  } catch (const nlohmann::json::exception& e) {
    return Status(ErrorCode::kCorruption,
                  path + ": not a sparetimed status file (" + e.what() +
                      "); it is rewritten by sparetimed, restart it");
  }
}

}  // namespace sparetime::config
