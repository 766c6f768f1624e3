// PeerStore's lifecycle (issue 21; peer_store.h "Lifecycle", docs/peers.md
// "Lifecycle"): Collect (expired releases out of the index, old roots
// generations deleted, imaging's Repack, usage recounted), roots history,
// departed owners and Purge.
//
// Invariants: Collect and Purge hold the owner's gate exclusively, so no
// other call of that owner runs while packs move or files go; nothing a
// crash interrupts is lost — the release log is rewritten only after the
// index removal committed (a leftover 'R' of an id no longer held is a
// no-op), Repack is crash-safe on its own (pack_repack.h), and usage is
// recounted from the store, not adjusted.
#include "sparetime/peerstore/peer_store.h"

#include <mutex>
#include <optional>
#include <shared_mutex>

#include "owner_files.h"
#include "peer_store_impl.h"
#include "release_log.h"
#include "sparetime/base/bytes.h"

namespace sparetime::peerstore {

// --- Lifecycle (issue 21) ---------------------------------------------------

Result<CollectReport> PeerStore::Collect(const std::string& owner, int64_t grace_seconds,
                                         double live_fraction, int64_t departed_grace_seconds) {
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/false));
  std::unique_lock exclusive(o->gate);
  CollectReport report;
  if (o->gone) return report;
  Env& env = impl_->env();
  const int64_t now = impl_->Now();
  report.disk_before = owner_files::TreeBytes(o->dir);
  if (std::optional<int64_t> since = owner_files::DepartedSince(env, o->dir);
      since && now - *since >= departed_grace_seconds) {
    ST_RETURN_IF_ERROR(owner_files::RemoveTree(env, o->dir));
    impl_->Forget(*o);
    report.purged = true;
    return report;
  }
  // 1. Releases whose grace is over leave the index; the log keeps the rest.
  std::vector<ChunkId> expired;
  PendingReleases keep;
  {
    MutexLock rl(o->release_mu);
    for (const auto& [id, when] : o->pending) {
      if (now - when >= grace_seconds) {
        expired.push_back(id);
      } else {
        keep.emplace(id, when);
      }
    }
  }
  if (!expired.empty()) {
    const uint64_t chunks_before = o->chunks->Stats().chunks;
    ST_ASSIGN_OR_RETURN(report.bytes_dropped, o->chunks->RemoveStored(expired));
    report.chunks_dropped = chunks_before - o->chunks->Stats().chunks;
  }
  {
    MutexLock rl(o->release_mu);
    o->pending = keep;
    ST_RETURN_IF_ERROR(ReleaseLog::Rewrite(env, o->dir + "/released", keep));
  }
  report.chunks_still_released = keep.size();
  // 2. Roots generations replaced more than the grace ago.
  {
    MutexLock fl(o->files_mu);
    Result<Roots> current = impl_->ReadRoots(*o);
    if (!current.ok() && current.status().code() != ErrorCode::kNotFound) {
      return current.status();
    }
    const uint64_t generation = current.ok() ? current->generation : UINT64_MAX;
    ST_ASSIGN_OR_RETURN(auto expired_generations,
                        owner_files::ExpireHistory(env, o->dir, generation, now, grace_seconds));
    report.generations_dropped = expired_generations.first;
  }
  // 3. The packs: every one may be rewritten (a fresh store owns none).
  ST_RETURN_IF_ERROR(impl_->ReopenChunks(*o));
  ST_ASSIGN_OR_RETURN(report.repack, o->chunks->Repack(live_fraction));
  impl_->Recount(*o);
  report.disk_after = owner_files::TreeBytes(o->dir);
  return report;
}

Result<std::vector<RootsGeneration>> PeerStore::RootsHistory(const std::string& owner) {
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/false));
  MutexLock fl(a.o->files_mu);
  std::vector<RootsGeneration> out;
  Result<Roots> current = impl_->ReadRoots(*a.o);
  if (!current.ok() && current.status().code() != ErrorCode::kNotFound) return current.status();
  ST_ASSIGN_OR_RETURN(std::vector<owner_files::HistoryEntry> history,
                      owner_files::ListHistory(a.o->dir));
  if (current.ok()) out.push_back({current->generation, 0, current->data.size()});
  for (auto it = history.rbegin(); it != history.rend(); ++it) {
    if (current.ok() && it->generation >= current->generation) continue;  // a crash's leftover
    out.push_back({it->generation, it->replaced_at, it->file_bytes - 16});
  }
  return out;
}

Result<Roots> PeerStore::GetRootsGeneration(const std::string& owner, uint64_t generation) {
  ST_ASSIGN_OR_RETURN(std::vector<RootsGeneration> held, RootsHistory(owner));
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/false));
  MutexLock fl(a.o->files_mu);
  if (!held.empty() && held.front().generation == generation) return impl_->ReadRoots(*a.o);
  bool kept = false;
  std::string list;
  for (const RootsGeneration& g : held) {
    kept = kept || g.generation == generation;
    list += (list.empty() ? "" : ", ") + std::to_string(g.generation);
  }
  if (!kept) {
    return Status(ErrorCode::kNotFound,
                  "roots generation " + std::to_string(generation) + " of " + a.o->name +
                      " is not held here (held: " + (list.empty() ? "none" : list) +
                      "; older ones are deleted after the grace period)");
  }
  ST_ASSIGN_OR_RETURN(std::string file,
                      owner_files::ReadGeneration(impl_->env(), a.o->dir, generation));
  auto bytes = AsBytes(file);
  return Roots{GetLe64(bytes.data()), std::vector<std::byte>(bytes.begin() + 8, bytes.end())};
}

Status PeerStore::NoteDirectory(const std::set<std::string>& present) {
  std::set<std::string> lower;
  for (const std::string& n : present) lower.insert(Lower(n));
  for (const std::string& name : Owners()) {
    Env& env = impl_->env();
    // Purged by another process (`sparetime peers --purge`): forget it here.
    if (Result<Impl::Owner*> o = impl_->Get(name, /*create=*/false); o.ok()) {
      ST_ASSIGN_OR_RETURN(bool exists, env.Exists((*o)->dir));
      if (!exists) {
        std::unique_lock exclusive((*o)->gate);
        if (!(*o)->gone) impl_->Forget(**o);
        continue;
      }
    }
    Result<Impl::Access> a = impl_->Enter(name, /*create=*/false);
    if (!a.ok()) continue;  // purged meanwhile
    if (lower.contains(name)) {
      ST_RETURN_IF_ERROR(owner_files::ClearDeparted(env, a->o->dir));
    } else if (!owner_files::DepartedSince(env, a->o->dir)) {
      ST_RETURN_IF_ERROR(owner_files::MarkDeparted(env, a->o->dir, impl_->Now()));
    }
  }
  return Status::Ok();
}

std::vector<Orphan> PeerStore::Orphans() {
  std::vector<Orphan> out;
  for (const std::string& name : Owners()) {
    Result<Impl::Access> a = impl_->Enter(name, /*create=*/false);
    if (!a.ok()) continue;
    std::optional<int64_t> since = owner_files::DepartedSince(impl_->env(), a->o->dir);
    if (!since) continue;
    out.push_back({name, impl_->Usage(*a->o).used(), *since});
  }
  return out;
}

Status PeerStore::Purge(const std::string& owner, const std::set<std::string>& present) {
  ST_RETURN_IF_ERROR(CheckOwnerName(owner));
  const std::string name = Lower(owner);
  for (const std::string& p : present) {
    if (Lower(p) == name) {
      return Status(ErrorCode::kFailedPrecondition,
                    name + " is in the directory: only the data of an owner whose entry is gone "
                           "is purged (delete cn=" + name + " first, or let its backups be)");
    }
  }
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(name, /*create=*/false));
  std::unique_lock exclusive(o->gate);
  if (o->gone) return Status::Ok();
  if (!owner_files::DepartedSince(impl_->env(), o->dir)) {
    return Status(ErrorCode::kFailedPrecondition,
                  name + " is not marked departed on this peer yet (its next directory read "
                         "marks it); nothing was deleted");
  }
  ST_RETURN_IF_ERROR(owner_files::RemoveTree(impl_->env(), o->dir));
  impl_->Forget(*o);
  return Status::Ok();
}

uint64_t PeerStore::DiskBytes(const std::string& owner) {
  if (!CheckOwnerName(owner).ok()) return 0;
  return owner_files::TreeBytes(impl_->root() + "/" + Lower(owner));
}

}  // namespace sparetime::peerstore
