// DirectoryClient: reads through a backend and keeps the last complete read
// in an SQLite cache (see client.h).
//
// Cache format (schema version 1): one row of directory_cache holding the raw
// DirectoryContents as JSON — {"agents"|"policies"|"groups": [{"dn": V,
// "attributes": {name: [V, ...]}}]}, where V is a JSON string, or
// {"base64": "..."} for bytes that are not valid UTF-8 — plus when it was
// fetched (Unix milliseconds) and from where. The raw entries are cached, not
// the parsed view, so a newer sparetime re-validates them with its own rules.
// The row is replaced in one transaction, only after a successful Fetch().
#include "sparetime/directory/client.h"

#include <nlohmann/json.hpp>

#include "sparetime/base/sqlite_db.h"
#include "values.h"

namespace sparetime::directory {
namespace {

using nlohmann::json;

constexpr int kCacheSchemaVersion = 1;
constexpr std::string_view kCacheSchema = R"sql(
CREATE TABLE directory_cache(
  id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row: the last complete read
  contents TEXT NOT NULL,                 -- DirectoryContents as JSON
  fetched_at_ms INTEGER NOT NULL,         -- Unix time of the read, milliseconds
  source TEXT NOT NULL);                  -- Directory::Describe()
)sql";

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF),
// the same rules nlohmann::json enforces when dumping.
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                              : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    auto c1 = static_cast<unsigned char>(len > 1 ? s[i + 1] : 0);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 >= 0x90)) {
      return false;
    }
    i += len;
  }
  return true;
}

json EncodeValue(const std::string& v) {
  if (IsUtf8(v)) return v;
  return json{{"base64", EncodeBase64(v)}};
}

// Callers catch json::exception (a value of the wrong shape).
Result<std::string> DecodeValue(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  return DecodeBase64(j.at("base64").get<std::string>());
}

json EncodeEntries(const std::vector<Entry>& entries) {
  json out = json::array();
  for (const Entry& e : entries) {
    json attributes = json::object();
    for (const auto& [name, values] : e.attributes) {
      json list = json::array();
      for (const std::string& v : values) list.push_back(EncodeValue(v));
      attributes[name] = std::move(list);
    }
    out.push_back(json{{"dn", EncodeValue(e.dn)}, {"attributes", std::move(attributes)}});
  }
  return out;
}

Result<std::vector<Entry>> DecodeEntries(const json& j) {
  std::vector<Entry> out;
  for (const json& e : j) {
    Entry entry;
    ST_ASSIGN_OR_RETURN(entry.dn, DecodeValue(e.at("dn")));
    for (const auto& [name, values] : e.at("attributes").items()) {
      for (const json& v : values) {
        ST_ASSIGN_OR_RETURN(std::string value, DecodeValue(v));
        entry.Add(name, std::move(value));
      }
    }
    out.push_back(std::move(entry));
  }
  return out;
}

int64_t ToMillis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

class DirectoryClient::Impl {
 public:
  struct Cached {
    DirectoryContents contents;
    TimePoint fetched_at;
    std::string source;
  };

  std::unique_ptr<Directory> backend;
  std::unique_ptr<SqliteDb> db;  // null: no cache
  const Clock* clock = nullptr;

  Status Store(const DirectoryContents& contents, TimePoint fetched_at, const std::string& source) {
    std::string text;
    try {
      text = json{{"agents", EncodeEntries(contents.agents)},
                  {"policies", EncodeEntries(contents.policies)},
                  {"groups", EncodeEntries(contents.groups)}}
                 .dump();
    } catch (const json::exception& e) {
      return Internal(db->path() + ": encoding the directory for the cache: " + e.what());
    }
    ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db));
    ST_ASSIGN_OR_RETURN(SqliteStmt put,
                        db->Prepare("INSERT OR REPLACE INTO directory_cache"
                                    "(id, contents, fetched_at_ms, source) VALUES(1, ?, ?, ?)"));
    ST_RETURN_IF_ERROR(put.Query()
                           .Bind(1, std::string_view(text))
                           .Bind(2, ToMillis(fetched_at))
                           .Bind(3, std::string_view(source))
                           .Run());
    return txn.Commit();
  }

  // The cached read; nullopt when nothing was cached yet.
  Result<std::optional<Cached>> Load() {
    ST_ASSIGN_OR_RETURN(SqliteStmt get, db->Prepare("SELECT contents, fetched_at_ms, source "
                                                    "FROM directory_cache WHERE id = 1"));
    SqliteQuery q = get.Query();
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return std::optional<Cached>();
    Cached c;
    c.fetched_at = TimePoint(std::chrono::duration_cast<TimePoint::duration>(
        std::chrono::milliseconds(q.Int(1))));
    c.source = q.Text(2);
    const std::string damaged = db->path() + ": the cached directory is damaged (";
    const std::string fix = "); delete the file, it is rebuilt on the next successful read";
    try {
      json j = json::parse(q.Text(0));
      for (auto [key, out] : {std::pair{"agents", &c.contents.agents},
                              std::pair{"policies", &c.contents.policies},
                              std::pair{"groups", &c.contents.groups}}) {
        Result<std::vector<Entry>> entries = DecodeEntries(j.at(key));
        if (!entries.ok()) return Corruption(damaged + entries.status().message() + fix);
        *out = std::move(*entries);
      }
    } catch (const json::exception& e) {
      return Corruption(damaged + e.what() + fix);
    }
    return std::optional<Cached>(std::move(c));
  }
};

Result<std::unique_ptr<DirectoryClient>> DirectoryClient::Open(std::unique_ptr<Directory> backend,
                                                               std::string cache_path,
                                                               const Clock& clock) {
  auto impl = std::make_unique<Impl>();
  impl->backend = std::move(backend);
  impl->clock = &clock;
  if (!cache_path.empty()) {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(cache_path, SqliteDb::Mode::kCreate);
    if (!db.ok()) return db.status().WithContext("opening the directory cache");
    ST_RETURN_IF_ERROR(
        (*db)->EnsureSchema(kCacheSchemaVersion, kCacheSchema).WithContext("directory cache"));
    impl->db = std::move(*db);
  }
  return std::unique_ptr<DirectoryClient>(new DirectoryClient(std::move(impl)));
}

DirectoryClient::DirectoryClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DirectoryClient::~DirectoryClient() = default;

Result<DirectoryState> DirectoryClient::Refresh() {
  Result<DirectoryContents> fetched = impl_->backend->Fetch();
  DirectoryState state;
  if (fetched.ok()) {
    state.view = Parse(*fetched);
    state.fetched_at = impl_->clock->WallNow();
    state.source = impl_->backend->Describe();
    if (impl_->db) {
      Status stored = impl_->Store(*fetched, state.fetched_at, state.source);
      if (!stored.ok()) {
        state.view.warnings.push_back("the directory cache was not updated (" + stored.ToString() +
                                      "); it still holds an older read");
      }
    }
    return state;
  }
  const std::string reason = fetched.status().ToString();
  const std::string unreachable =
      "the directory " + impl_->backend->Describe() + " could not be reached (" + reason + ")";
  if (!impl_->db) {
    return Unavailable(unreachable + " and no cached copy exists (no cache is configured)");
  }
  Result<std::optional<Impl::Cached>> cached = impl_->Load();
  if (!cached.ok()) {
    return Unavailable(unreachable + " and the cached copy cannot be used: " +
                       cached.status().message());
  }
  if (!cached->has_value()) {
    return Unavailable(unreachable + " and no cached copy exists yet in " + impl_->db->path() +
                       "; fix the directory (URI, network, server or file) and retry");
  }
  Impl::Cached& c = **cached;
  state.view = Parse(c.contents);
  state.fetched_at = c.fetched_at;
  state.source = c.source;
  state.from_cache = true;
  state.cache_reason = reason;
  return state;
}

Status DirectoryClient::Register(const AgentRegistration& self) {
  return impl_->backend->Register(self, impl_->clock->WallNow());
}

Result<bool> DirectoryClient::WaitForChange(std::chrono::milliseconds max_wait) {
  return impl_->backend->WaitForChange(max_wait);
}

Directory& DirectoryClient::backend() { return *impl_->backend; }

}  // namespace sparetime::directory
