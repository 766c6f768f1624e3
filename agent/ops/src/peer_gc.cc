// ops::CollectHeld (peer_gc.h).
#include "sparetime/ops/peer_gc.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace sparetime::ops {
namespace {

std::string MiB(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

HeldGcSettings HeldGcFromPolicy(const directory::EffectivePolicy& policy) {
  HeldGcSettings s;
  s.grace_seconds = int64_t{policy.peer_grace_days} * 86400;
  s.departed_grace_seconds = int64_t{policy.departed_grace_days} * 86400;
  return s;
}

std::set<std::string> AgentNames(const directory::DirectoryView& view) {
  std::set<std::string> names;
  for (const directory::AgentRecord& a : view.agents) names.insert(a.name);
  return names;
}

std::string HeldGcReport::ToString() const {
  uint64_t dropped = 0, bytes = 0, rewritten = 0, deleted = 0, purged = 0, pending = 0;
  std::string notes;
  for (const HeldGcOwner& o : owners) {
    if (!o.skipped.empty()) notes += "; " + o.owner + " skipped (" + o.skipped + ")";
    if (!o.error.ok()) notes += "; " + o.owner + " failed: " + o.error.message();
    dropped += o.report.chunks_dropped;
    bytes += o.report.bytes_dropped;
    pending += o.report.chunks_still_released;
    rewritten += o.report.repack.packs_rewritten;
    deleted += o.report.repack.packs_deleted;
    purged += o.report.purged ? 1 : 0;
  }
  return std::to_string(owners.size()) + " owner(s): " + std::to_string(dropped) +
         " released chunk(s) (" + MiB(bytes) + ") dropped, " + std::to_string(pending) +
         " still in their grace, " + std::to_string(rewritten) + " pack(s) rewritten, " +
         std::to_string(deleted) + " deleted, " + std::to_string(purged) +
         " departed owner(s) deleted; disk " + MiB(disk_before) + " -> " + MiB(disk_after) + notes;
}

namespace {

Result<std::unique_ptr<peerstore::PeerStore>> OpenHeld(const config::AgentConfig& config) {
  const std::string root = config.state_dir + "/held";
  if (::access(root.c_str(), F_OK) != 0) {
    return Status(ErrorCode::kNotFound, "this agent holds nothing for others (no " + root + ")");
  }
  return peerstore::PeerStore::Open(root, {config.capacity, config.owner_quota});
}

}  // namespace

Result<std::vector<peerstore::Orphan>> ListOrphans(const config::AgentConfig& config,
                                                   const directory::DirectoryState& directory) {
  ST_ASSIGN_OR_RETURN(auto store, OpenHeld(config));
  if (!directory.from_cache && !directory.view.agents.empty()) {
    ST_RETURN_IF_ERROR(store->NoteDirectory(AgentNames(directory.view)));
  }
  return store->Orphans();
}

Status PurgeOrphan(const config::AgentConfig& config, const directory::DirectoryState& directory,
                   const std::string& host) {
  ST_RETURN_IF_ERROR(peerstore::PeerStore::CheckOwnerName(host));
  if (directory.from_cache) {
    return Status(ErrorCode::kUnavailable,
                  "the directory is unreachable (" + directory.cache_reason +
                      "): a purge needs a fresh read to be sure " + host +
                      " is gone; nothing was deleted, try again when it answers");
  }
  ST_ASSIGN_OR_RETURN(auto store, OpenHeld(config));
  const std::set<std::string> present = AgentNames(directory.view);
  std::vector<std::string> owners = store->Owners();
  std::string lower = host;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (std::find(owners.begin(), owners.end(), lower) == owners.end()) {
    return Status(ErrorCode::kNotFound, "this agent holds nothing for " + lower +
                                            " (see `sparetime peers --orphans`)");
  }
  if (!directory.view.agents.empty()) ST_RETURN_IF_ERROR(store->NoteDirectory(present));
  return store->Purge(lower, present);
}

Result<HeldGcReport> CollectHeld(peerstore::PeerStore& store, peerstore::ReadHolds* holds,
                                 const std::optional<std::set<std::string>>& present,
                                 const HeldGcSettings& settings, PauseGate& gate) {
  if (present) ST_RETURN_IF_ERROR(store.NoteDirectory(*present));
  HeldGcReport report;
  for (const std::string& owner : store.Owners()) {
    ST_RETURN_IF_ERROR(gate.WaitWhilePaused(0));
    HeldGcOwner o;
    o.owner = owner;
    const uint64_t before = store.DiskBytes(owner);
    report.disk_before += before;
    if (holds != nullptr) {
      if (Status held = holds->CheckRelease(owner); !held.ok()) {
        o.skipped = held.message();
        report.disk_after += before;
        report.owners.push_back(std::move(o));
        continue;
      }
    }
    Result<peerstore::CollectReport> r = store.Collect(
        owner, settings.grace_seconds, settings.live_fraction, settings.departed_grace_seconds);
    if (r.ok()) {
      o.report = *r;
    } else {
      o.error = r.status();
    }
    report.disk_after += store.DiskBytes(owner);
    report.owners.push_back(std::move(o));
  }
  return report;
}

}  // namespace sparetime::ops
