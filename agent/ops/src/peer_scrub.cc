// ScrubHeld: a peer re-reads what it holds for others, resuming at a cursor
// (invariants in ops/peer_scrub.h).
#include "sparetime/ops/peer_scrub.h"

#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

#include "sparetime/base/fd.h"
#include "sparetime/base/json_numbers.h"

namespace sparetime::ops {
namespace {

using nlohmann::json;

json ToJson(const ScrubState& s) {
  json owners = json::object();
  for (const auto& [name, o] : s.owners) {
    owners[name] = {{"cursor", o.cursor},   {"pass_started", o.pass_started},
                    {"last_complete", o.last_complete}, {"passes", o.passes},
                    {"checked", o.checked}, {"damaged", o.damaged}};
  }
  json damage = json::array();
  for (const ScrubDamage& d : s.damage) {
    damage.push_back({{"owner", d.owner}, {"id", d.id_hex}, {"at", d.at}, {"error", d.error}});
  }
  return {{"version", 1}, {"owners", owners}, {"damage", damage}};
}

}  // namespace

std::string ScrubStatePath(const std::string& state_dir) { return state_dir + "/scrub.json"; }

Result<ScrubState> LoadScrubState(const std::string& path) {
  Result<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    if (text.status().code() == ErrorCode::kNotFound) return ScrubState{};
    return text.status();
  }
  try {
    json j = json::parse(*text);
    ST_RETURN_IF_ERROR(CheckJsonIntegers(j, path));
    if (j.at("version").get<int>() != 1) {
      return Status(ErrorCode::kCorruption, path + ": unknown scrub state version");
    }
    ScrubState s;
    for (const auto& [name, o] : j.at("owners").items()) {
      OwnerScrubState& st = s.owners[name];
      st.cursor = o.at("cursor").get<std::string>();
      if (!st.cursor.empty() && !ChunkId::FromHex(st.cursor)) {
        return Status(ErrorCode::kCorruption, path + ": cursor of " + name + " is not a chunk id");
      }
      st.pass_started = o.at("pass_started").get<int64_t>();
      st.last_complete = o.at("last_complete").get<int64_t>();
      st.passes = o.at("passes").get<uint64_t>();
      st.checked = o.at("checked").get<uint64_t>();
      st.damaged = o.at("damaged").get<uint64_t>();
    }
    for (const auto& d : j.at("damage")) {
      s.damage.push_back({d.at("owner").get<std::string>(), d.at("id").get<std::string>(),
                          d.at("at").get<int64_t>(), d.at("error").get<std::string>()});
    }
    return s;
  } catch (const json::exception& e) {
    return Status(ErrorCode::kCorruption,
                  path + ": not a scrub state file (" + e.what() +
                      "); delete it and the next scrub starts a fresh pass");
  }
}

Status SaveScrubState(const std::string& path, const ScrubState& state) {
  return WriteFileAtomic(path, ToJson(state).dump(1) + "\n", 0600);
}

std::string ScrubReport::ToString() const {
  return std::to_string(checked) + " chunk(s) of " + std::to_string(owners) + " owner(s) read (" +
         std::to_string(bytes) + " bytes), " + std::to_string(damaged) +
         " damaged copy(ies) found and dropped, " + std::to_string(passes_completed) +
         " pass(es) completed" +
         (resumed ? ", " + std::to_string(resumed) + " resumed at a cursor" : "");
}

Result<ScrubReport> ScrubHeld(peerstore::PeerStore& store, const ScrubRequest& request) {
  auto now = [&request] { return request.now ? request.now() : int64_t{0}; };
  Result<ScrubState> loaded = LoadScrubState(request.state_path);
  ScrubState state;
  if (loaded.ok()) {
    state = std::move(*loaded);
  } else if (loaded.status().code() != ErrorCode::kCorruption) {
    return loaded.status();
  }  // a damaged state file: a fresh pass (the worst case is re-reading)
  ScrubReport report;
  // What this run will read, for the progress figure.
  std::vector<std::pair<std::string, std::vector<StoredChunk>>> work;
  uint64_t total = 0;
  for (const std::string& owner : store.Owners()) {
    ST_ASSIGN_OR_RETURN(std::vector<StoredChunk> chunks, store.ListChunks(owner));
    OwnerScrubState& st = state.owners[owner];
    std::optional<ChunkId> cursor = st.cursor.empty() ? std::nullopt : ChunkId::FromHex(st.cursor);
    if (cursor) {
      ++report.resumed;
      // ListStored is in id (byte) order: skip up to and including the cursor.
      auto after = std::upper_bound(chunks.begin(), chunks.end(), *cursor,
                                    [](const ChunkId& c, const StoredChunk& s) { return c.bytes < s.id.bytes; });
      chunks.erase(chunks.begin(), after);
    }
    for (const StoredChunk& c : chunks) total += c.bytes;
    work.emplace_back(owner, std::move(chunks));
  }
  // Owners no longer held (purged) leave the state.
  for (auto it = state.owners.begin(); it != state.owners.end();) {
    bool held = std::any_of(work.begin(), work.end(), [&](const auto& w) { return w.first == it->first; });
    it = held ? std::next(it) : state.owners.erase(it);
  }
  uint64_t done = 0;
  Status stopped;
  for (auto& [owner, chunks] : work) {
    ++report.owners;
    OwnerScrubState& st = state.owners[owner];
    if (st.pass_started == 0) st.pass_started = now();
    uint64_t since_save = 0;
    for (const StoredChunk& c : chunks) {
      if (request.gate != nullptr) {
        stopped = request.gate->WaitWhilePaused(c.bytes);
        if (!stopped.ok()) break;
      }
      Result<std::vector<std::byte>> blob = store.Get(owner, c.id);
      if (!blob.ok()) {
        if (blob.status().code() == ErrorCode::kCorruption) {
          ScrubDamage d{owner, c.id.hex(), now(), blob.status().message()};
          ++st.damaged;
          ++report.damaged;
          state.damage.push_back(d);
          if (state.damage.size() > kMaxDamageKept) state.damage.erase(state.damage.begin());
          if (request.on_damage) request.on_damage(d);
        } else if (blob.status().code() != ErrorCode::kNotFound) {
          // Released meanwhile is fine; anything else (I/O) stops the run,
          // cursor saved: the next run starts here again.
          stopped = blob.status().WithContext("scrub of what " + owner + " keeps here");
          break;
        }
      }
      ++st.checked;
      ++report.checked;
      report.bytes += c.bytes;
      done += c.bytes;
      st.cursor = c.id.hex();
      if (request.progress) request.progress(done, total);
      if (++since_save >= kSaveEvery) {
        since_save = 0;
        ST_RETURN_IF_ERROR(SaveScrubState(request.state_path, state));
      }
    }
    if (!stopped.ok()) break;
    st.cursor.clear();
    st.pass_started = 0;
    st.last_complete = now();
    ++st.passes;
    ++report.passes_completed;
  }
  ST_RETURN_IF_ERROR(SaveScrubState(request.state_path, state));
  if (!stopped.ok()) return stopped;
  return report;
}

}  // namespace sparetime::ops
