// PeerStore::Impl, shared by peer_store.cc (storage, quotas) and
// peer_lifecycle.cc (delayed delete, Collect, departed owners). Internal.
// Invariants: see peer_store.h and peer_store.cc.
#ifndef SPARETIME_PEERSTORE_PEER_STORE_IMPL_H_
#define SPARETIME_PEERSTORE_PEER_STORE_IMPL_H_


#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <shared_mutex>
#include "sparetime/base/bytes.h"
#include "sparetime/base/env.h"
#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"
#include "sparetime/imaging/pack_store.h"
#include "owner_files.h"
#include "release_log.h"
#include "sparetime/peerstore/peer_store.h"

namespace sparetime::peerstore {
namespace internal {


inline std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A host name as a directory name: lower-case DNS characters, no "." or "..".
inline bool ValidOwner(const std::string& name) {
  if (name.empty() || name.size() > 253 || name[0] == '.' || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

inline Result<std::vector<std::string>> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return names;
    return ErrnoStatus("cannot list " + dir, errno);
  }
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n.find(".tmp") == std::string::npos) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

inline uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}


}  // namespace internal
using internal::FileSize;
using internal::ListDir;
using internal::Lower;
using internal::ValidOwner;

class PeerStore::Impl {
 public:
  Impl(std::string root, PeerStoreLimits limits, Env* env, const Clock& clock)
      : root_(std::move(root)), limits_(limits), env_(*env), clock_(clock) {
    if (limits_.owner_quota == 0) limits_.owner_quota = limits_.capacity;
  }

  struct Owner {
    std::string name;
    std::string dir;
    std::unique_ptr<PackStore> chunks;
    uint64_t chunk_count = 0;
    uint64_t chunk_bytes = 0;
    uint64_t record_bytes = 0;
    Mutex files_mu;  // key and roots files
    // Shared by every call on this owner, exclusive for Collect and Purge
    // (guards no field: it keeps the pack files still while they move).
    std::shared_mutex gate;
    bool gone = false;  // purged; set with `gate` held exclusively
    Mutex release_mu;   // the release log and these
    PendingReleases pending GUARDED_BY(release_mu);
    std::vector<ChunkId> kept GUARDED_BY(release_mu);  // released, stored again; logged at Flush
  };

  // An owner entered for one call: its gate held shared.
  struct Access {
    Owner* o = nullptr;
    std::shared_lock<std::shared_mutex> lock;
  };
  Result<Access> Enter(const std::string& owner_name, bool create) EXCLUDES(mu_) {
    for (;;) {
      ST_ASSIGN_OR_RETURN(Owner * o, Get(owner_name, create));
      std::shared_lock lock(o->gate);
      if (!o->gone) return Access{o, std::move(lock)};
    }
  }

  Status Scan() EXCLUDES(mu_) {
    ST_ASSIGN_OR_RETURN(const bool existed, env_.Exists(root_));
    ST_RETURN_IF_ERROR(MakeDirs(env_, root_, 0700));
    if (!existed) ST_RETURN_IF_ERROR(env_.SyncDir(DirName(root_)));
    ST_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(root_));
    for (const auto& n : names) {
      if (!CheckOwnerName(n).ok()) continue;
      Result<Owner*> o = Get(n, /*create=*/false);
      // An owner directory without a store: its creation was cut short (a
      // crash before anything was stored). The first put creates it again.
      if (!o.ok() && o.status().code() == ErrorCode::kNotFound) continue;
      ST_RETURN_IF_ERROR(o.status());
    }
    return Status::Ok();
  }

  // The owner's state, opened (or created when `create`) on first use.
  Result<Owner*> Get(const std::string& owner_name, bool create) EXCLUDES(mu_) {
    ST_RETURN_IF_ERROR(CheckOwnerName(owner_name));
    std::string name = Lower(owner_name);
    MutexLock l(mu_);
    auto it = owners_.find(name);
    if (it != owners_.end()) return it->second.get();
    auto o = std::make_unique<Owner>();
    o->name = name;
    o->dir = root_ + "/" + name;
    std::string chunks_dir = o->dir + "/chunks";
    PackStoreOptions options;
    options.env = &env_;
    Result<std::unique_ptr<PackStore>> store = PackStore::Open(chunks_dir, options);
    if (!store.ok() && store.status().code() == ErrorCode::kNotFound) {
      if (!create) return Status(ErrorCode::kNotFound, "nothing is held for " + name);
      ST_RETURN_IF_ERROR(MakeDirs(env_, o->dir, 0700));
      ST_RETURN_IF_ERROR(env_.SyncDir(root_));  // the owner's directory, durable in held/
      store = PackStore::Create(chunks_dir, options);
    }
    if (!store.ok()) return store.status().WithContext("chunks held for " + name);
    o->chunks = std::move(*store);
    PackStoreStats stats = o->chunks->Stats();
    o->chunk_count = stats.chunks;
    o->chunk_bytes = stats.stored_bytes;
    // A history entry of the still-current generation: a roots update cut
    // short after keeping the old one (owner_files.h). Not worth counting.
    if (Result<std::string> roots = ReadFileToString(env_, o->dir + "/roots");
        roots.ok() && roots->size() >= 8) {
      const uint64_t current = GetLe64(reinterpret_cast<const std::byte*>(roots->data()));
      ST_RETURN_IF_ERROR(
          owner_files::ExpireHistory(env_, o->dir, current, 0, INT64_MAX).status());
    }
    o->record_bytes = FileSize(o->dir + "/key") + FileSize(o->dir + "/roots") +
                      owner_files::HistoryBytes(o->dir);
    Result<PendingReleases> pending = ReleaseLog::Load(env_, o->dir + "/released");
    if (!pending.ok()) return pending.status().WithContext("releases held for " + name);
    {
      MutexLock rl(o->release_mu);
      o->pending = std::move(*pending);
    }
    total_used_ += o->chunk_bytes + o->record_bytes;
    Owner* raw = o.get();
    owners_.emplace(name, std::move(o));
    return raw;
  }

  // Reserves `delta` more bytes for `o` (may be negative to give back).
  Status Reserve(Owner& o, int64_t delta, bool chunk) EXCLUDES(mu_) {
    MutexLock l(mu_);
    uint64_t owner_used = o.chunk_bytes + o.record_bytes;
    if (delta > 0) {
      uint64_t d = static_cast<uint64_t>(delta);
      if (owner_used + d > limits_.owner_quota) {
        return Status(ErrorCode::kNoSpace,
                      "over quota: this peer holds " + std::to_string(owner_used) +
                          " bytes for " + o.name + ", its quota is " +
                          std::to_string(limits_.owner_quota) + " bytes; " + std::to_string(d) +
                          " more refused (ask the peer's admin for more, or use other peers)");
      }
      if (total_used_ + d > limits_.capacity) {
        return Status(ErrorCode::kNoSpace,
                      "peer full: it offers " + std::to_string(limits_.capacity) +
                          " bytes and holds " + std::to_string(total_used_) + "; " +
                          std::to_string(d) + " more refused");
      }
    }
    (chunk ? o.chunk_bytes : o.record_bytes) += static_cast<uint64_t>(delta);
    total_used_ += static_cast<uint64_t>(delta);
    return Status::Ok();
  }

  std::vector<std::string> Owners() EXCLUDES(mu_) {
    MutexLock l(mu_);
    std::vector<std::string> out;
    for (const auto& [name, o] : owners_) out.push_back(name);
    return out;
  }

  uint64_t TotalUsed() EXCLUDES(mu_) {
    MutexLock l(mu_);
    return total_used_;
  }

  OwnerUsage Usage(Owner& o) EXCLUDES(mu_) {
    MutexLock l(mu_);
    return OwnerUsage{o.name, o.chunk_count, o.chunk_bytes, o.record_bytes};
  }

  void AddChunks(Owner& o, int64_t n) EXCLUDES(mu_) {
    MutexLock l(mu_);
    o.chunk_count += static_cast<uint64_t>(n);
  }

  // Replaces a file's content, accounting for the size change.
  Status ReplaceFile(Owner& o, const std::string& path, std::span<const std::byte> data) {
    MutexLock fl(o.files_mu);
    return ReplaceFileLocked(o, path, data);
  }

  Result<Roots> ReadRoots(Owner& o) REQUIRES(o.files_mu) {
    Result<std::string> text = ReadFileToString(env_, o.dir + "/roots");
    if (!text.ok()) {
      if (text.status().code() == ErrorCode::kNotFound) {
        return Status(ErrorCode::kNotFound, "no manifest roots are held for " + o.name);
      }
      return text.status();
    }
    if (text->size() < 8) {
      return Status(ErrorCode::kCorruption, o.dir + "/roots is truncated");
    }
    auto bytes = AsBytes(*text);
    return Roots{GetLe64(bytes.data()), std::vector<std::byte>(bytes.begin() + 8, bytes.end())};
  }

  Status ReplaceRoots(Owner& o, uint64_t generation, std::span<const std::byte> data) {
    MutexLock fl(o.files_mu);
    Result<Roots> held = ReadRoots(o);
    if (held.ok() && generation <= held->generation) {
      return Status(ErrorCode::kFailedPrecondition,
                    "roots generation " + std::to_string(generation) + " for " + o.name +
                        " is not newer than the held " + std::to_string(held->generation));
    }
    if (!held.ok() && held.status().code() != ErrorCode::kNotFound) return held.status();
    if (held.ok()) ST_RETURN_IF_ERROR(KeepGenerationLocked(o, *held));
    std::vector<std::byte> file(8 + data.size());
    PutLe64(file.data(), generation);
    std::copy(data.begin(), data.end(), file.begin() + 8);
    return ReplaceFileLocked(o, o.dir + "/roots", file);
  }

  Status ReplaceFileLocked(Owner& o, const std::string& path, std::span<const std::byte> data)
      REQUIRES(o.files_mu) {
    uint64_t old_size = FileSize(path);
    int64_t delta = static_cast<int64_t>(data.size()) - static_cast<int64_t>(old_size);
    ST_RETURN_IF_ERROR(Reserve(o, delta, /*chunk=*/false));
    Status s = WriteFileAtomic(
        env_, path, std::string_view(reinterpret_cast<const char*>(data.data()), data.size()), 0600);
    if (!s.ok()) Reserve(o, -delta, false).IgnoreError();
    return s;
  }

  // The replaced roots, kept as history for the grace period (counted).
  Status KeepGenerationLocked(Owner& o, const Roots& held) REQUIRES(o.files_mu) {
    std::vector<std::byte> file(8 + held.data.size());
    PutLe64(file.data(), held.generation);
    std::copy(held.data.begin(), held.data.end(), file.begin() + 8);
    const int64_t delta = static_cast<int64_t>(file.size() + 8);
    ST_RETURN_IF_ERROR(Reserve(o, delta, /*chunk=*/false));
    Status s = owner_files::KeepGeneration(env_, o.dir, file, Now());
    if (!s.ok()) Reserve(o, -delta, false).IgnoreError();
    return s;
  }

  // Removes `ids` from the index now (damaged copies); their release
  // marks go with them. REQUIRES: o.gate held (shared or exclusive).
  Result<uint64_t> Drop(Owner& o, std::span<const ChunkId> ids) EXCLUDES(mu_) {
    PackStoreStats before = o.chunks->Stats();
    ST_RETURN_IF_ERROR(o.chunks->Remove(ids));
    PackStoreStats after = o.chunks->Stats();
    Reserve(o, -static_cast<int64_t>(before.stored_bytes - after.stored_bytes), true)
        .IgnoreError();
    AddChunks(o, -static_cast<int64_t>(before.chunks - after.chunks));
    return before.chunks - after.chunks;
  }

  // Usage recounted from what is on disk (after Collect).
  void Recount(Owner& o) EXCLUDES(mu_) {
    PackStoreStats stats = o.chunks->Stats();
    const uint64_t records = FileSize(o.dir + "/key") + FileSize(o.dir + "/roots") +
                             owner_files::HistoryBytes(o.dir);
    MutexLock l(mu_);
    total_used_ -= o.chunk_bytes + o.record_bytes;
    o.chunk_count = stats.chunks;
    o.chunk_bytes = stats.stored_bytes;
    o.record_bytes = records;
    total_used_ += o.chunk_bytes + o.record_bytes;
  }

  // Forgets `o` (its files are gone): out of the map, its usage freed.
  // REQUIRES: o.gate held exclusively.
  void Forget(Owner& o) EXCLUDES(mu_) {
    MutexLock l(mu_);
    o.gone = true;
    total_used_ -= o.chunk_bytes + o.record_bytes;
    auto it = owners_.find(o.name);
    if (it != owners_.end() && it->second.get() == &o) {
      graveyard_.push_back(std::move(it->second));
      owners_.erase(it);
    }
  }

  // Reopens the owner's pack store, so no pack is "its own open one" and
  // the repack may rewrite every pack. REQUIRES: o.gate held exclusively.
  Status ReopenChunks(Owner& o) {
    ST_RETURN_IF_ERROR(o.chunks->Flush());
    PackStoreOptions options;
    options.env = &env_;
    o.chunks.reset();
    Result<std::unique_ptr<PackStore>> store = PackStore::Open(o.dir + "/chunks", options);
    if (!store.ok()) return store.status().WithContext("chunks held for " + o.name);
    o.chunks = std::move(*store);
    return Status::Ok();
  }

  int64_t Now() const { return ToUnixSeconds(clock_.WallNow()); }
  const std::string& root() const { return root_; }
  const PeerStoreLimits& limits() const { return limits_; }
  Env& env() { return env_; }

 private:
  std::string root_;
  PeerStoreLimits limits_;
  Env& env_;
  const Clock& clock_;
  // Guards owners_, total_used_ and every Owner's byte counters.
  Mutex mu_;
  std::map<std::string, std::unique_ptr<Owner>> owners_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Owner>> graveyard_ GUARDED_BY(mu_);  // purged, still pointed to
  uint64_t total_used_ GUARDED_BY(mu_) = 0;
};

}  // namespace sparetime::peerstore

#endif  // SPARETIME_PEERSTORE_PEER_STORE_IMPL_H_
