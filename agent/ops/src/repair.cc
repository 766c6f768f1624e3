// ops::Repair (see maintenance.h): backups on peers re-replicate
// (Backups::Repair); a local repository heals itself from a source device.
//
// Invariants of the local repair:
//   - It verifies every snapshot first (VerifyBackups, which records the
//     damage), so what it reports is what is damaged now.
//   - A chunk is stored again only when the bytes read from the source at
//     one of its offsets hash to its id (Codec::Id): a device that changed
//     since the backup never replaces a chunk with other data.
//   - What stays damaged is listed as every (snapshot, offset, length) whose
//     bytes a restore cannot give back.
#include <algorithm>
#include <tuple>
#include <unordered_map>

#include "sparetime/imaging/device.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/ops/maintenance.h"

namespace sparetime::ops {
namespace {

// Every use of a damaged chunk in the snapshots that verify checked.
struct Use {
  std::string snapshot;
  uint64_t offset = 0;
  uint64_t length = 0;
};

Result<std::unordered_map<ChunkId, std::vector<Use>, ChunkIdHash>> UsesOf(
    Backups& backups, const VerifyBackupsReport& verified) {
  std::unordered_map<ChunkId, std::vector<Use>, ChunkIdHash> uses;
  for (const DamagedChunkUse& c : verified.chunks) uses[c.id];
  for (const SnapshotVerdict& v : verified.snapshots) {
    if (v.bad.empty()) continue;
    ST_ASSIGN_OR_RETURN(Manifest m, LoadManifest(v.snapshot.manifest_root, backups.codec(),
                                                 backups.source()));
    for (uint64_t i = 0; i < m.chunk_count(); ++i) {
      auto it = uses.find(m.chunks[i]);
      if (it == uses.end()) continue;
      it->second.push_back({v.snapshot.id, i * m.chunk_size, m.ChunkLength(i)});
    }
  }
  return uses;
}

// Reads each use of `id` from `device` until one hashes to `id`, then
// stores it. True when it did.
Result<bool> StoreFromDevice(Backups& backups, BlockDevice& device, const ChunkId& id,
                             const std::vector<Use>& uses, AlignedBuffer& buffer) {
  for (const Use& u : uses) {
    if (u.offset + u.length > device.size() || u.length > buffer.size()) continue;
    std::span<std::byte> data(buffer.data(), u.length);
    ST_ASSIGN_OR_RETURN(size_t got, device.ReadAt(u.offset, data));
    if (got != u.length || !(backups.codec().Id(data) == id)) continue;
    ST_RETURN_IF_ERROR(backups.sink().Put(id, backups.codec().Seal(BlobKind::kData, id, data))
                           .status());
    return true;
  }
  return false;
}

Result<RepairReport> RepairLocal(Backups& backups, const RepairRequest& r) {
  VerifyRequest verify;
  verify.cancel = r.cancel;
  ST_ASSIGN_OR_RETURN(VerifyBackupsReport verified, VerifyBackups(backups, verify));
  if (verified.database_error) {
    return Corruption(*verified.database_error +
                      "; repair cannot trust what the damaged database says");
  }
  RepairReport report;
  report.local = true;
  for (const SnapshotVerdict& v : verified.snapshots) {
    if (v.manifest_error) {
      return Corruption("snapshot " + v.snapshot.id + ": its manifest is damaged (" +
                        *v.manifest_error + "); repair cannot tell which chunks it uses: "
                        "`sparetime forget " + v.snapshot.id + "` and back the device up again");
    }
    report.chunks += v.chunks_checked;
  }
  if (verified.chunks.empty()) return report;

  ST_ASSIGN_OR_RETURN(auto uses, UsesOf(backups, verified));
  std::unique_ptr<BlockDevice> device;
  if (!r.source.empty()) {
    ST_ASSIGN_OR_RETURN(device, OpenBlockDevice(r.source, {.direct_io = false}));
  }
  AlignedBuffer buffer(backups.config().chunk_size);
  for (const DamagedChunkUse& c : verified.chunks) {
    if (r.cancel && r.cancel->load()) return Cancelled("repair stopped on request");
    const std::vector<Use>& at = uses[c.id];
    bool stored = false;
    if (device) {
      ST_ASSIGN_OR_RETURN(stored, StoreFromDevice(backups, *device, c.id, at, buffer));
    }
    if (stored) {
      ++report.copied;
      continue;
    }
    ++report.lost;
    for (const Use& u : at) report.lost_at.push_back({u.snapshot, u.offset, u.length});
  }
  if (report.copied > 0) ST_RETURN_IF_ERROR(backups.sink().Flush());
  std::sort(report.lost_at.begin(), report.lost_at.end(),
            [](const LostRange& a, const LostRange& b) {
              return std::tie(a.snapshot, a.offset) < std::tie(b.snapshot, b.offset);
            });
  return report;
}

}  // namespace

Result<RepairReport> Repair(Backups& backups, const RepairRequest& request) {
  if (backups.local()) return RepairLocal(backups, request);
  if (!request.source.empty()) {
    return InvalidArgument("--source is for a local repository (--repo): backups on peers are "
                           "repaired from the other peers' copies");
  }
  return backups.Repair();
}

}  // namespace sparetime::ops
