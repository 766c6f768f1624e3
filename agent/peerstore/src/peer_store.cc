// PeerStore implementation: one lazily opened PackStore per owner plus files
// for keys and records; byte accounting in memory (initialised by scanning
// at Open), with space reserved under one mutex before any write so that
// concurrent puts cannot overshoot a quota together. Lifecycle
// (delayed release, Collect, departed owners): see peer_store.h; each
// owner has a reader/writer gate that every call takes shared (Enter) and
// Collect/Purge take exclusively, and an owner purged is marked gone and
// kept in graveyard_ so a pointer another call fetched stays valid.
#include "sparetime/peerstore/peer_store.h"

#include "peer_store_impl.h"

namespace sparetime::peerstore {

PeerStore::PeerStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerStore::~PeerStore() = default;

Result<std::unique_ptr<PeerStore>> PeerStore::Open(const std::string& root,
                                                   PeerStoreLimits limits, Env* env,
                                                   const Clock& clock) {
  auto impl = std::make_unique<Impl>(root, limits, env, clock);
  ST_RETURN_IF_ERROR(impl->Scan());
  return std::unique_ptr<PeerStore>(new PeerStore(std::move(impl)));
}

Status PeerStore::CheckOwnerName(const std::string& owner) {
  if (ValidOwner(Lower(owner))) return Status::Ok();
  return Status(ErrorCode::kInvalidArgument,
                "owner name '" + owner +
                    "' is not a host name (1..253 characters of a-z 0-9 . - _, not starting "
                    "with . or -)");
}

Result<std::vector<bool>> PeerStore::Has(const std::string& owner, std::span<const ChunkId> ids) {
  std::vector<bool> out(ids.size(), false);
  Result<Impl::Access> a = impl_->Enter(owner, /*create=*/false);
  if (!a.ok()) {
    if (a.status().code() == ErrorCode::kNotFound) return out;
    return a.status();
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    ST_ASSIGN_OR_RETURN(bool held, a->o->chunks->Contains(ids[i]));
    out[i] = held;
  }
  // Released chunks are not held for the owner any more (they only wait
  // for their grace; Get still serves them).
  MutexLock rl(a->o->release_mu);
  if (a->o->pending.empty()) return out;
  for (size_t i = 0; i < ids.size(); ++i) out[i] = out[i] && !a->o->pending.contains(ids[i]);
  return out;
}

Result<bool> PeerStore::Put(const std::string& owner, const ChunkId& id,
                            std::span<const std::byte> sealed, const BlobHash& expected_hash) {
  if (HashBlob(sealed) != expected_hash) {
    return Status(ErrorCode::kCorruption,
                  "chunk " + id.hex() + " for " + owner +
                      " arrived damaged (its hash does not match the sender's); not stored");
  }
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/true));
  Impl::Owner* o = a.o;
  ST_ASSIGN_OR_RETURN(bool held, o->chunks->Contains(id));
  if (held) {
    bool released = false;
    {
      MutexLock rl(o->release_mu);
      released = o->pending.contains(id);
    }
    if (!released) return true;
    // Released and sent again: keep it (as newly stored: the owner's Has
    // said no), unless the held copy is damaged (then drop it and store
    // this one).
    Result<std::vector<std::byte>> copy = o->chunks->Get(id);
    if (!copy.ok() && copy.status().code() != ErrorCode::kCorruption) return copy.status();
    {
      MutexLock rl(o->release_mu);
      o->pending.erase(id);
      o->kept.push_back(id);
    }
    if (copy.ok()) return false;
    ST_RETURN_IF_ERROR(impl_->Drop(*o, std::span(&id, 1)).status());
  }
  int64_t size = static_cast<int64_t>(sealed.size());
  ST_RETURN_IF_ERROR(impl_->Reserve(*o, size, /*chunk=*/true));
  Result<bool> existed = o->chunks->Put(id, sealed);
  if (!existed.ok() || *existed) {
    impl_->Reserve(*o, -size, true).IgnoreError();
  } else {
    impl_->AddChunks(*o, 1);
  }
  return existed;
}

Status PeerStore::Flush(const std::string& owner) {
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/true));
  ST_RETURN_IF_ERROR(a.o->chunks->Flush());
  MutexLock rl(a.o->release_mu);
  std::vector<ReleaseLog::Record> records;
  for (const ChunkId& id : a.o->kept) records.push_back({ReleaseLog::kKept, 0, id});
  ST_RETURN_IF_ERROR(ReleaseLog::Append(impl_->env(), a.o->dir + "/released", records));
  a.o->kept.clear();
  return Status::Ok();
}

// A copy that fails its own hash check is dropped here and now (issue 26):
// Has then says it is gone, so the owner's next backup or repair sends a
// good copy, which Put stores instead of keeping the damaged one.
Result<std::vector<std::byte>> PeerStore::Get(const std::string& owner, const ChunkId& id) {
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/false));
  Result<std::vector<std::byte>> sealed = a.o->chunks->Get(id);
  if (sealed.ok() || sealed.status().code() != ErrorCode::kCorruption) return sealed;
  Result<uint64_t> dropped = impl_->Drop(*a.o, std::span(&id, 1));
  return Status(ErrorCode::kCorruption,
                sealed.status().message() +
                    (dropped.ok() ? "; this peer dropped its damaged copy"
                                  : "; dropping it failed: " + dropped.status().message()));
}

Result<uint64_t> PeerStore::Release(const std::string& owner, std::span<const ChunkId> ids) {
  Result<Impl::Access> a = impl_->Enter(owner, /*create=*/false);
  if (!a.ok()) {
    if (a.status().code() == ErrorCode::kNotFound) return uint64_t{0};
    return a.status();
  }
  Impl::Owner* o = a->o;
  const int64_t now = impl_->Now();
  uint64_t held = 0;
  MutexLock rl(o->release_mu);
  std::vector<ReleaseLog::Record> records;
  for (const ChunkId& id : ids) {
    ST_ASSIGN_OR_RETURN(bool h, o->chunks->Contains(id));
    if (!h) continue;
    ++held;
    if (!o->pending.contains(id)) records.push_back({ReleaseLog::kReleased, now, id});
  }
  ST_RETURN_IF_ERROR(ReleaseLog::Append(impl_->env(), o->dir + "/released", records));
  for (const ReleaseLog::Record& r : records) o->pending.emplace(r.id, r.when);
  // Released again before the flush that would log it kept: not kept.
  std::vector<ChunkId> still_kept;
  for (const ChunkId& id : o->kept) {
    if (!o->pending.contains(id)) still_kept.push_back(id);
  }
  o->kept = std::move(still_kept);
  return held;
}

Result<uint64_t> PeerStore::Drop(const std::string& owner, std::span<const ChunkId> ids) {
  Result<Impl::Access> a = impl_->Enter(owner, /*create=*/false);
  if (!a.ok()) {
    if (a.status().code() == ErrorCode::kNotFound) return uint64_t{0};
    return a.status();
  }
  return impl_->Drop(*a->o, ids);
}

Status PeerStore::PutKey(const std::string& owner, std::span<const std::byte> wrapped_key) {
  if (wrapped_key.empty() || wrapped_key.size() > PeerStoreLimits::kMaxKeyBytes) {
    return Status(ErrorCode::kInvalidArgument,
                  "a wrapped key must be 1.." + std::to_string(PeerStoreLimits::kMaxKeyBytes) +
                      " bytes, got " + std::to_string(wrapped_key.size()));
  }
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/true));
  return impl_->ReplaceFile(*a.o, a.o->dir + "/key", wrapped_key);
}

Result<std::vector<std::byte>> PeerStore::GetKey(const std::string& owner) {
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/false));
  Impl::Owner* o = a.o;
  MutexLock fl(o->files_mu);
  Result<std::string> text = ReadFileToString(impl_->env(), o->dir + "/key");
  if (!text.ok()) {
    if (text.status().code() == ErrorCode::kNotFound) {
      return Status(ErrorCode::kNotFound, "no key is held for " + o->name);
    }
    return text.status();
  }
  auto bytes = AsBytes(*text);
  return std::vector<std::byte>(bytes.begin(), bytes.end());
}

Status PeerStore::PutRoots(const std::string& owner, uint64_t generation,
                           std::span<const std::byte> data) {
  if (data.size() > PeerStoreLimits::kMaxRootsBytes) {
    return Status(ErrorCode::kInvalidArgument,
                  "roots of " + std::to_string(data.size()) + " bytes; at most " +
                      std::to_string(PeerStoreLimits::kMaxRootsBytes));
  }
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/true));
  return impl_->ReplaceRoots(*a.o, generation, data);
}

Result<Roots> PeerStore::GetRoots(const std::string& owner) {
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/false));
  MutexLock fl(a.o->files_mu);
  return impl_->ReadRoots(*a.o);
}

Result<uint64_t> PeerStore::Scrub(const std::string& owner,
                                  const std::function<void(const ChunkId&, const Status&)>& bad) {
  ST_ASSIGN_OR_RETURN(Impl::Access a, impl_->Enter(owner, /*create=*/false));
  Impl::Owner* o = a.o;
  std::vector<ChunkId> damaged;
  ST_ASSIGN_OR_RETURN(uint64_t checked, o->chunks->Scrub([&](const ChunkId& id, const Status& s) {
    damaged.push_back(id);
    if (bad) bad(id, s);
  }));
  ST_RETURN_IF_ERROR(impl_->Drop(*o, damaged).status());  // dropped, like Get does
  return checked;
}

Result<std::vector<StoredChunk>> PeerStore::ListChunks(const std::string& owner) {
  Result<Impl::Owner*> o = impl_->Get(owner, /*create=*/false);
  if (!o.ok()) {
    if (o.status().code() == ErrorCode::kNotFound) return std::vector<StoredChunk>{};
    return o.status();
  }
  return (*o)->chunks->ListStored();
}

Result<OwnerUsage> PeerStore::Usage(const std::string& owner) {
  Result<Impl::Access> a = impl_->Enter(owner, /*create=*/false);
  if (!a.ok()) {
    if (a.status().code() == ErrorCode::kNotFound) return OwnerUsage{owner};
    return a.status();
  }
  OwnerUsage usage = impl_->Usage(*a->o);
  PendingReleases pending;
  {
    MutexLock rl(a->o->release_mu);
    pending = a->o->pending;
  }
  if (pending.empty()) return usage;
  ST_ASSIGN_OR_RETURN(std::vector<StoredChunk> stored, a->o->chunks->ListStored());
  for (const StoredChunk& c : stored) {
    if (!pending.contains(c.id)) continue;
    ++usage.released_chunks;
    usage.released_bytes += c.bytes;
  }
  return usage;
}

std::vector<std::string> PeerStore::Owners() { return impl_->Owners(); }
uint64_t PeerStore::TotalUsed() { return impl_->TotalUsed(); }
const PeerStoreLimits& PeerStore::limits() const { return impl_->limits(); }

}  // namespace sparetime::peerstore
