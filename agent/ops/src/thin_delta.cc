// Changed blocks of a thin LV since its kept base snapshot (issue 20
// section 5), from thin-provisioning-tools' thin_delta on a metadata
// snapshot of the pool:
//   dmsetup message <pool>-tpool 0 reserve_metadata_snap
//   thin_delta -m --snap1 BASE --snap2 NEW <pool>_tmeta
//   dmsetup message <pool>-tpool 0 release_metadata_snap
// Its <different>, <left_only> and <right_only> ranges changed; <same> and
// ranges it does not list (unmapped in both: zeroes in both) did not. A chunk
// of the new image with no changed byte takes the base snapshot's id.
//
// Invariants:
//   - Never fails a backup: every problem (tool missing, metadata snapshot
//     refused, base snapshot not in the catalog, other device, size or chunk
//     size, unparsable output) gives an empty list and the reason, i.e. a
//     full read.
//   - The metadata snapshot is released on every path once reserved.
//   - A range is unchanged only when thin_delta said so for every block of it
//     (or listed neither side): anything it lists that is not <same> counts
//     as changed.
#include "sparetime/ops/thin_delta.h"

#include <cstdlib>

#include "consistency_internal.h"
#include "sparetime/imaging/manifest.h"

namespace sparetime::ops {
namespace {

// The value of attribute `name` in one XML element's text, or "".
std::string Attr(const std::string& element, const std::string& name) {
  const std::string key = " " + name + "=\"";
  const size_t at = element.find(key);
  if (at == std::string::npos) return "";
  const size_t from = at + key.size();
  const size_t end = element.find('"', from);
  return end == std::string::npos ? "" : element.substr(from, end - from);
}

bool ToU64(const std::string& text, uint64_t& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtoull(text.c_str(), &end, 10);
  return end != nullptr && *end == '\0';
}

}  // namespace

Result<std::vector<ByteRange>> ParseThinDelta(const std::string& xml) {
  uint64_t block_bytes = 0;
  std::vector<ByteRange> changed;
  bool diff = false;
  for (size_t at = xml.find('<'); at != std::string::npos; at = xml.find('<', at + 1)) {
    const size_t end = xml.find('>', at);
    if (end == std::string::npos) return Corruption("thin_delta output ends inside an element");
    const std::string element = xml.substr(at, end - at);
    size_t name_end = element.find_first_of(" />", 1);
    if (name_end == std::string::npos) name_end = element.size();
    const std::string name = element.substr(1, name_end - 1);
    if (name.empty() || name[0] == '/' || name[0] == '?' || name[0] == '!') continue;
    if (name == "superblock") {
      uint64_t sectors = 0;
      if (!ToU64(Attr(element, "data_block_size"), sectors) || sectors == 0) {
        return Corruption("thin_delta's superblock has no data_block_size");
      }
      block_bytes = sectors * 512;
      continue;
    }
    if (name == "diff") {
      diff = true;
      continue;
    }
    uint64_t begin = 0, length = 0;
    if (!ToU64(Attr(element, "begin"), begin) || !ToU64(Attr(element, "length"), length)) {
      return Corruption("thin_delta element <" + name + "> without begin and length");
    }
    if (block_bytes == 0) return Corruption("thin_delta range before its superblock");
    if (name == "same") continue;
    // different, left_only, right_only (and anything unknown): changed.
    const ByteRange r{begin * block_bytes, length * block_bytes};
    if (!changed.empty() && changed.back().offset + changed.back().length == r.offset) {
      changed.back().length += r.length;
    } else {
      changed.push_back(r);
    }
  }
  if (!diff) return Corruption("thin_delta printed no <diff>");
  return changed;
}

std::vector<uint64_t> UnchangedChunks(const std::vector<ByteRange>& changed, uint64_t size,
                                      uint32_t chunk_size) {
  std::vector<uint64_t> out;
  const uint64_t count = (size + chunk_size - 1) / chunk_size;
  size_t r = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t from = i * chunk_size, to = std::min(size, from + chunk_size);
    while (r < changed.size() && changed[r].offset + changed[r].length <= from) ++r;
    if (r < changed.size() && changed[r].offset < to) continue;  // touched
    out.push_back(i);
  }
  return out;
}

ThinDelta UnchangedSinceBase(const ThinChain& chain, Backups& backups,
                             const DeviceIdentity& device, uint64_t size, uint32_t chunk_size) {
  ThinDelta d;
  auto give_up = [&](const std::string& why) {
    d.unchanged.clear();
    d.note = "changed blocks not known (" + why + "): reading the thin volume in full";
    return d;
  };
  if (!chain.broken.empty()) return give_up(chain.broken);
  Result<Snapshot> base = backups.catalog().FindSnapshot(chain.base_snapshot_id);
  if (!base.ok()) {
    return give_up("the snapshot " + chain.base_snapshot_id + " of " + chain.base_lv +
                   " is not in the catalog: " + base.status().message());
  }
  if (base->device.Key() != device.Key() || base->size != size ||
      base->chunk_size != chunk_size) {
    return give_up("snapshot " + base->id + " is of another device, size or chunk size");
  }
  Result<Manifest> manifest =
      LoadManifest(base->manifest_root, backups.codec(), backups.source());
  if (!manifest.ok()) return give_up("manifest of " + base->id + ": " + manifest.status().message());

  const std::string tpool = chain.pool_dm_path + "-tpool";
  const std::string tmeta = chain.pool_dm_path + "_tmeta";
  Result<detail::ToolResult> reserved =
      detail::RunTool({"dmsetup", "message", tpool, "0", "reserve_metadata_snap"});
  if (!reserved.ok()) return give_up(reserved.status().message());
  if (reserved->exit_code != 0) {
    return give_up("dmsetup message " + tpool + " 0 reserve_metadata_snap: " +
                   reserved->err.substr(0, 200));
  }
  Result<detail::ToolResult> delta =
      detail::RunTool({"thin_delta", "-m", "--snap1", std::to_string(chain.base_thin_id), "--snap2",
               std::to_string(chain.new_thin_id), tmeta});
  Result<detail::ToolResult> released =
      detail::RunTool({"dmsetup", "message", tpool, "0", "release_metadata_snap"});
  if (!released.ok() || released->exit_code != 0) {
    d.warning = "dmsetup message " + tpool + " 0 release_metadata_snap failed (" +
                (released.ok() ? released->err.substr(0, 200) : released.status().message()) +
                "); run it by hand, or the pool's metadata cannot be snapshotted again";
  }
  if (!delta.ok()) return give_up(delta.status().message() + " (install thin-provisioning-tools)");
  if (delta->exit_code != 0) return give_up("thin_delta: " + delta->err.substr(0, 200));
  Result<std::vector<ByteRange>> changed = ParseThinDelta(delta->out);
  if (!changed.ok()) return give_up(changed.status().message());
  for (const ByteRange& r : *changed) d.changed_bytes += r.length;
  for (uint64_t i : UnchangedChunks(*changed, size, chunk_size)) {
    d.unchanged.emplace_back(i, manifest->chunks[i]);
  }
  d.note = "thin_delta since snapshot " + base->id + " (" + chain.base_lv +
           "): " + std::to_string(d.changed_bytes) + " bytes changed, " +
           std::to_string(d.unchanged.size()) + " of " +
           std::to_string(manifest->chunk_count()) + " chunks taken from it unread";
  return d;
}

}  // namespace sparetime::ops
