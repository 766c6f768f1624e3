// Fleet state encoding and its strict, bounded parser (fleet_state.h).
#include "sparetime/directory/fleet_state.h"

#include <charconv>
#include <limits>

#include <nlohmann/json.hpp>


namespace sparetime::directory {
namespace {

using nlohmann::json;

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

std::string Dump(const json& j) {
  // Replace invalid UTF-8 (an error message may carry a device's bytes).
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Quote(std::string_view value) {
  constexpr size_t kShown = 120;
  return "\"" + std::string(value.substr(0, kShown)) + (value.size() > kShown ? "...\"" : "\"");
}

class StateReader {
 public:
  StateReader(std::string_view attribute, std::string_view value)
      : attribute_(attribute), value_(value) {}

  Status Error(const std::string& why) const {
    return InvalidArgument(std::string(attribute_) + ": " + Quote(value_) + " " + why +
                           " (a broken or foreign agent wrote it; the agent rewrites it at its "
                           "next heartbeat, or an admin may delete the value)");
  }

  Result<json> Object() const {
    if (value_.size() > kMaxStateValueBytes) {
      return Error("is " + std::to_string(value_.size()) + " bytes; at most " +
                   std::to_string(kMaxStateValueBytes) + " are accepted");
    }
    json j = json::parse(value_, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return Error("is not a JSON object");
    return j;
  }

  // A non-negative integer under `key`; `required` or 0 when absent.
  Result<int64_t> Integer(const json& j, const char* key, bool required) const {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) return Error(std::string("has no \"") + key + "\"");
      return int64_t{0};
    }
    if (!it->is_number_integer()) {
      return Error(std::string("has \"") + key + "\" that is not an integer");
    }
    if (it->is_number_unsigned() ? it->get<uint64_t>() > static_cast<uint64_t>(kMaxInt)
                                 : it->get<int64_t>() < 0) {
      return Error(std::string("has \"") + key + "\" out of range (0 to 2^63-1)");
    }
    return it->get<int64_t>();
  }

  Result<std::string> String(const json& j, const char* key, bool required, size_t max) const {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) return Error(std::string("has no \"") + key + "\"");
      return std::string();
    }
    if (!it->is_string()) return Error(std::string("has \"") + key + "\" that is not a string");
    std::string s = it->get<std::string>();
    if (s.size() > max) {
      return Error(std::string("has \"") + key + "\" longer than " + std::to_string(max) + " bytes");
    }
    return s;
  }

 private:
  std::string_view attribute_;
  std::string_view value_;
};

}  // namespace

std::string EncodeDeviceState(const DeviceBackupState& s) {
  json j = {{"device", s.device}, {"time", s.time}, {"size", s.size}};
  if (!s.snapshot.empty()) j["snapshot"] = s.snapshot;
  j["seconds"] = s.seconds;
  j["stored"] = s.stored;
  j["forced"] = s.forced;
  return Dump(j);
}

std::string EncodeBackupHealth(const BackupHealth& h) {
  std::string error = h.last_error.substr(0, kMaxErrorChars);
  json j = {{"replicas", h.replicas},       {"healthy", h.healthy},
            {"under_replicated", h.under_replicated}, {"last_verify", h.last_verify},
            {"last_error", error},          {"last_error_time", h.last_error_time}};
  std::string out = Dump(j);
  // A message of multi-byte characters escaped as \uFFFD could pass the bound.
  while (out.size() > kMaxStateValueBytes && !error.empty()) {
    error.resize(error.size() / 2);
    j["last_error"] = error;
    out = Dump(j);
  }
  return out;
}

Result<DeviceBackupState> ParseDeviceState(std::string_view value) {
  StateReader r("sparetimeBackupState", value);
  ST_ASSIGN_OR_RETURN(json j, r.Object());
  DeviceBackupState s;
  ST_ASSIGN_OR_RETURN(s.device, r.String(j, "device", true, 512));
  if (s.device.empty() || s.device.front() != '/') {
    return r.Error("has a \"device\" that is not an absolute path");
  }
  ST_ASSIGN_OR_RETURN(s.time, r.Integer(j, "time", true));
  ST_ASSIGN_OR_RETURN(int64_t size, r.Integer(j, "size", true));
  s.size = static_cast<uint64_t>(size);
  ST_ASSIGN_OR_RETURN(s.snapshot, r.String(j, "snapshot", false, 64));
  for (char c : s.snapshot) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return r.Error("has a \"snapshot\" that is not a lower-case hex id");
    }
  }
  if (s.time > 0 && s.snapshot.empty()) return r.Error("has a \"time\" but no \"snapshot\"");
  ST_ASSIGN_OR_RETURN(int64_t seconds, r.Integer(j, "seconds", false));
  ST_ASSIGN_OR_RETURN(int64_t stored, r.Integer(j, "stored", false));
  s.seconds = static_cast<uint64_t>(seconds);
  s.stored = static_cast<uint64_t>(stored);
  if (auto it = j.find("forced"); it != j.end()) {
    if (!it->is_boolean()) return r.Error("has \"forced\" that is not true or false");
    s.forced = it->get<bool>();
  }
  return s;
}

Result<BackupHealth> ParseBackupHealth(std::string_view value) {
  StateReader r("sparetimeBackupHealth", value);
  ST_ASSIGN_OR_RETURN(json j, r.Object());
  BackupHealth h;
  ST_ASSIGN_OR_RETURN(int64_t replicas, r.Integer(j, "replicas", true));
  if (replicas > 16) return r.Error("has \"replicas\" above 16");
  h.replicas = static_cast<uint32_t>(replicas);
  ST_ASSIGN_OR_RETURN(int64_t healthy, r.Integer(j, "healthy", true));
  ST_ASSIGN_OR_RETURN(int64_t under, r.Integer(j, "under_replicated", true));
  h.healthy = static_cast<uint64_t>(healthy);
  h.under_replicated = static_cast<uint64_t>(under);
  ST_ASSIGN_OR_RETURN(h.last_verify, r.Integer(j, "last_verify", false));
  ST_ASSIGN_OR_RETURN(h.last_error, r.String(j, "last_error", false, kMaxStateValueBytes));
  ST_ASSIGN_OR_RETURN(h.last_error_time, r.Integer(j, "last_error_time", false));
  return h;
}

bool IsOverdue(const DeviceBackupState& s, int64_t now, int64_t max_age_seconds) {
  return s.time <= 0 || now - s.time > max_age_seconds;
}

Result<int64_t> ParseMaxAge(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("\"" + std::string(text) + "\" " + why +
                           "; a valid value is a number and a unit m, h, d or w, from 1h to "
                           "365d, e.g. 3d or 36h");
  };
  if (text.size() < 2) return bad("is not a duration");
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, n);
  if (ec != std::errc() || ptr != text.data() + text.size() - 1 || n <= 0) {
    return bad("does not start with a positive whole number");
  }
  int64_t unit = 0;
  switch (text.back()) {
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return bad("has no unit");
  }
  if (n > 365 * 86400 / unit + 1) return bad("is longer than 365 days");
  int64_t seconds = n * unit;
  if (seconds < 3600 || seconds > 365 * 86400) return bad("is out of range");
  return seconds;
}

}  // namespace sparetime::directory
