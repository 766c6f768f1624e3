// sparetime.conf parser: INI sections of "key = value" lines, '#' or ';'
// comments on their own lines, strict about unknown or repeated keys. Values
// are validated as they are read, so every error names file:line.
#include "sparetime/config/config.h"

#include <sys/utsname.h>

#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "sparetime/base/fd.h"

namespace sparetime::config {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Splits "number unit" into its parts ("1.5T" -> 1.5, "t").
bool SplitNumber(const std::string& text, double* number, std::string* unit) {
  std::string t = Trim(text);
  size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  if (i == 0) return false;
  try {
    size_t used = 0;
    *number = std::stod(t.substr(0, i), &used);
    if (used != i) return false;
  } catch (const std::exception&) {
    return false;
  }
  *unit = Lower(Trim(t.substr(i)));
  return std::isfinite(*number) && *number >= 0;
}

Result<bool> ParseBool(const std::string& text) {
  std::string v = Lower(text);
  if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
  if (v == "false" || v == "no" || v == "off" || v == "0") return false;
  return Status(ErrorCode::kInvalidArgument, "'" + text + "' is not a boolean (true or false)");
}

Result<uint64_t> ParseUnsigned(const std::string& text, uint64_t max) {
  uint64_t v = 0;
  if (text.empty() || text.size() > 20) {
    return Status(ErrorCode::kInvalidArgument, "'" + text + "' is not a number");
  }
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      return Status(ErrorCode::kInvalidArgument, "'" + text + "' is not a number");
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) {
    return Status(ErrorCode::kInvalidArgument,
                  "'" + text + "' is out of range (at most " + std::to_string(max) + ")");
  }
  return v;
}

// "host:port", "[v6]:port" or "host" (port kept).
Status ParseListen(const std::string& text, std::string* address, uint16_t* port) {
  std::string host = text;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) {
      return Status(ErrorCode::kInvalidArgument, "'" + text + "': missing ']'");
    }
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') {
        return Status(ErrorCode::kInvalidArgument, "'" + text + "': expected ':' after ']'");
      }
      port_text = text.substr(close + 2);
    }
  } else if (size_t colon = text.rfind(':');
             colon != std::string::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.empty()) return Status(ErrorCode::kInvalidArgument, "'" + text + "': empty address");
  *address = host;
  if (!port_text.empty()) {
    auto p = ParseUnsigned(port_text, 65535);
    if (!p.ok()) {
      return Status(ErrorCode::kInvalidArgument,
                    "'" + text + "': the port must be a number 0..65535 (0: any free port)");
    }
    *port = static_cast<uint16_t>(*p);
  }
  return Status::Ok();
}

std::string HostName() {
  struct utsname u {};
  if (::uname(&u) != 0) return "localhost";
  return u.nodename;
}

using Setter = std::function<Status(AgentConfig&, const std::string&)>;

Status SetSize(uint64_t* field, const std::string& v) {
  ST_ASSIGN_OR_RETURN(*field, ParseSize(v));
  return Status::Ok();
}
Status SetDuration(std::chrono::milliseconds* field, const std::string& v) {
  ST_ASSIGN_OR_RETURN(auto d, ParseDuration(v));
  if (d.count() == 0) return Status(ErrorCode::kInvalidArgument, "must be more than 0");
  *field = d;
  return Status::Ok();
}
Status SetAbsolutePath(std::string* field, const std::string& v) {
  if (v.empty() || v.front() != '/') {
    return Status(ErrorCode::kInvalidArgument, "must be an absolute path");
  }
  *field = v;
  return Status::Ok();
}
Status SetNonEmpty(std::string* field, const std::string& v) {
  if (v.empty()) return Status(ErrorCode::kInvalidArgument, "must not be empty");
  *field = v;
  return Status::Ok();
}

// section -> key -> setter. The single list of what the file may contain.
const std::map<std::string, std::map<std::string, Setter>>& Keys() {
  using C = AgentConfig;
  static const std::map<std::string, std::map<std::string, Setter>> keys = {
      {"agent",
       {
           {"name", [](C& c, const std::string& v) { return SetNonEmpty(&c.name, v); }},
           {"listen",
            [](C& c, const std::string& v) {
              return ParseListen(v, &c.listen_address, &c.listen_port);
            }},
           {"advertise_address",
            [](C& c, const std::string& v) { return SetNonEmpty(&c.advertise_address, v); }},
           {"state_dir",
            [](C& c, const std::string& v) { return SetAbsolutePath(&c.state_dir, v); }},
           {"site", [](C& c, const std::string& v) { return SetNonEmpty(&c.site, v); }},
           {"heartbeat",
            [](C& c, const std::string& v) { return SetDuration(&c.heartbeat, v); }},
           {"peer_timeout",
            [](C& c, const std::string& v) { return SetDuration(&c.peer_timeout, v); }},
       }},
      {"storage",
       {
           {"capacity", [](C& c, const std::string& v) { return SetSize(&c.capacity, v); }},
           {"owner_quota",
            [](C& c, const std::string& v) { return SetSize(&c.owner_quota, v); }},
           {"scrub_interval",
            [](C& c, const std::string& v) { return SetDuration(&c.scrub_interval, v); }},
       }},
      {"directory",
       {
           {"uri", [](C& c, const std::string& v) { return SetNonEmpty(&c.directory.uri, v); }},
           {"base",
            [](C& c, const std::string& v) { return SetNonEmpty(&c.directory.base_dn, v); }},
           {"bind_dn",
            [](C& c, const std::string& v) { return SetNonEmpty(&c.directory.bind_dn, v); }},
           {"password_file",
            [](C& c, const std::string& v) {
              return SetNonEmpty(&c.directory.password_file, v);
            }},
           {"sasl_external",
            [](C& c, const std::string& v) -> Status {
              ST_ASSIGN_OR_RETURN(c.directory.sasl_external, ParseBool(v));
              return Status::Ok();
            }},
           {"ca_file",
            [](C& c, const std::string& v) { return SetNonEmpty(&c.directory.ca_file, v); }},
           {"cert_file",
            [](C& c, const std::string& v) { return SetNonEmpty(&c.directory.cert_file, v); }},
           {"key_file",
            [](C& c, const std::string& v) { return SetNonEmpty(&c.directory.key_file, v); }},
           {"timeout",
            [](C& c, const std::string& v) {
              return SetDuration(&c.directory.operation_timeout, v);
            }},
           {"connect_timeout",
            [](C& c, const std::string& v) {
              return SetDuration(&c.directory.network_timeout, v);
            }},
           {"poll_interval",
            [](C& c, const std::string& v) {
              return SetDuration(&c.directory.poll_interval, v);
            }},
           {"page_size",
            [](C& c, const std::string& v) -> Status {
              ST_ASSIGN_OR_RETURN(uint64_t n, ParseUnsigned(v, 100000));
              if (n == 0) return Status(ErrorCode::kInvalidArgument, "must be 1..100000");
              c.directory.page_size = static_cast<int>(n);
              return Status::Ok();
            }},
           {"cache",
            [](C& c, const std::string& v) { return SetNonEmpty(&c.directory_cache, v); }},
       }},
      {"backup",
       {
           {"passphrase_file",
            [](C& c, const std::string& v) { return SetAbsolutePath(&c.passphrase_file, v); }},
           {"interval",
            [](C& c, const std::string& v) { return SetDuration(&c.backup_interval, v); }},
           {"devices",
            [](C& c, const std::string& v) -> Status {
              std::vector<std::string> list;
              std::string word;
              for (size_t i = 0; i <= v.size(); ++i) {
                if (i == v.size() || v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
                  if (word.empty()) continue;
                  if (word[0] != '/') {
                    return Status(ErrorCode::kInvalidArgument,
                                  "\"" + word + "\" is not an absolute path (name devices as "
                                  "/dev/..., separated by spaces)");
                  }
                  list.push_back(word);
                  word.clear();
                } else {
                  word += v[i];
                }
              }
              c.devices = std::move(list);
              return Status::Ok();
            }},
           {"verify_interval",
            [](C& c, const std::string& v) { return SetDuration(&c.verify_interval, v); }},
       }},
      {"scheduler",
       {
           {"settle", [](C& c, const std::string& v) { return SetDuration(&c.settle, v); }},
           {"load_grace",
            [](C& c, const std::string& v) { return SetDuration(&c.load_grace, v); }},
           {"resume_delay",
            [](C& c, const std::string& v) { return SetDuration(&c.resume_delay, v); }},
           {"ignore_load",
            [](C& c, const std::string& v) -> Status {
              ST_ASSIGN_OR_RETURN(c.ignore_load, ParseBool(v));
              return Status::Ok();
            }},
           {"utmp", [](C& c, const std::string& v) { return SetAbsolutePath(&c.utmp, v); }},
       }},
      {"metrics",
       {
           {"textfile_dir",
            [](C& c, const std::string& v) -> Status {
              if (v.empty()) {
                c.metrics_dir.clear();  // no metrics
                return Status::Ok();
              }
              return SetAbsolutePath(&c.metrics_dir, v);
            }},
       }},
      {"notify",
       {
           {"command",
            [](C& c, const std::string& v) -> Status {
              c.notify_command = v;
              return Status::Ok();
            }},
           {"timeout",
            [](C& c, const std::string& v) -> Status {
              ST_RETURN_IF_ERROR(SetDuration(&c.notify_timeout, v));
              if (c.notify_timeout < std::chrono::seconds(1) ||
                  c.notify_timeout > std::chrono::minutes(10)) {
                return Status(ErrorCode::kInvalidArgument, "must be 1s..10m");
              }
              return Status::Ok();
            }},
       }},
  };
  return keys;
}

}  // namespace

Result<uint64_t> ParseSize(const std::string& text) {
  double number = 0;
  std::string unit;
  if (!SplitNumber(text, &number, &unit)) {
    return Status(ErrorCode::kInvalidArgument,
                  "'" + text + "' is not a size (examples: 4096, 512M, 500G, 1.5T)");
  }
  static const std::map<std::string, int> kShifts = {
      {"", 0},    {"b", 0},   {"k", 10},  {"kb", 10}, {"kib", 10}, {"m", 20},  {"mb", 20},
      {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},  {"tb", 40}, {"tib", 40},
      {"p", 50},  {"pb", 50}, {"pib", 50}};
  auto it = kShifts.find(unit);
  if (it == kShifts.end()) {
    return Status(ErrorCode::kInvalidArgument,
                  "'" + text + "': unknown unit '" + unit + "' (use K, M, G, T or P)");
  }
  double bytes = std::ldexp(number, it->second);
  if (bytes >= 18446744073709551615.0) {
    return Status(ErrorCode::kInvalidArgument, "'" + text + "' is too large");
  }
  if (it->second == 0 && number != std::floor(number)) {
    return Status(ErrorCode::kInvalidArgument, "'" + text + "': bytes must be a whole number");
  }
  return static_cast<uint64_t>(bytes);
}

Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  double number = 0;
  std::string unit;
  if (!SplitNumber(text, &number, &unit)) {
    return Status(ErrorCode::kInvalidArgument,
                  "'" + text + "' is not a duration (examples: 500ms, 30s, 5m, 1h)");
  }
  static const std::map<std::string, double> kMillis = {
      {"ms", 1}, {"", 1000}, {"s", 1000}, {"m", 60'000}, {"min", 60'000}, {"h", 3'600'000},
      {"d", 86'400'000}};
  auto it = kMillis.find(unit);
  if (it == kMillis.end()) {
    return Status(ErrorCode::kInvalidArgument,
                  "'" + text + "': unknown unit '" + unit + "' (use ms, s, m, h or d)");
  }
  double ms = number * it->second;
  if (ms > 1e12) return Status(ErrorCode::kInvalidArgument, "'" + text + "' is too long");
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

Result<AgentConfig> ParseConfig(const std::string& text, const std::string& path) {
  AgentConfig config;
  config.path = path;
  config.directory.uri = "file:///etc/sparetime/directory.ldif";
  std::istringstream in(text);
  std::string line;
  std::string section;
  std::set<std::string> seen;
  int number = 0;
  auto error = [&](const std::string& what) {
    return Status(ErrorCode::kInvalidArgument,
                  path + ":" + std::to_string(number) + ": " + what);
  };
  while (std::getline(in, line)) {
    ++number;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']') return error("a section header must look like [agent]");
      section = Lower(Trim(t.substr(1, t.size() - 2)));
      if (!Keys().contains(section)) {
        return error("unknown section [" + section + "] (sections: agent, storage, directory, backup, scheduler)");
      }
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string::npos) return error("expected 'key = value', got '" + t + "'");
    std::string key = Lower(Trim(t.substr(0, eq)));
    std::string value = Trim(t.substr(eq + 1));
    if (section.empty()) return error("'" + key + "' is outside any section; start with [agent]");
    const auto& keys = Keys().at(section);
    auto setter = keys.find(key);
    if (setter == keys.end()) {
      std::string known;
      for (const auto& [k, unused] : keys) known += (known.empty() ? "" : ", ") + k;
      return error("unknown key '" + key + "' in [" + section + "] (known: " + known + ")");
    }
    if (!seen.insert(section + "." + key).second) {
      return error("'" + key + "' is set twice in [" + section + "]");
    }
    if (Status s = setter->second(config, value); !s.ok()) {
      return error("[" + section + "] " + key + ": " + s.message());
    }
  }
  if (config.directory.base_dn.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  path + ": [directory] base is required: the DN of the ou=sparetime entry, "
                         "e.g. base = ou=sparetime,dc=example,dc=org");
  }
  if (config.name.empty()) config.name = HostName();
  if (config.advertise_address.empty()) config.advertise_address = config.name;
  if (config.directory_cache.empty()) {
    config.directory_cache = config.state_dir + "/directory-cache.sqlite";
  }
  if (config.owner_quota == 0) config.owner_quota = config.capacity;
  return config;
}

Result<AgentConfig> LoadConfig(const std::string& path) {
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseConfig(text, path);
}

}  // namespace sparetime::config
