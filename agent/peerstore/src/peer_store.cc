// PeerStore implementation: one lazily opened PackStore per owner plus files
// for keys and records; byte accounting in memory (initialised by scanning
// at Open), with space reserved under one mutex before any write so that
// concurrent puts cannot overshoot a quota together.
#include "sparetime/peerstore/peer_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "sparetime/base/bytes.h"
#include "sparetime/base/env.h"
#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"
#include "sparetime/imaging/pack_store.h"

namespace sparetime::peerstore {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A host name as a directory name: lower-case DNS characters, no "." or "..".
bool ValidOwner(const std::string& name) {
  if (name.empty() || name.size() > 253 || name[0] == '.' || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

Result<std::vector<std::string>> ListDir(const std::string& dir) {
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

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

class PeerStore::Impl {
 public:
  Impl(std::string root, PeerStoreLimits limits, Env* env)
      : root_(std::move(root)), limits_(limits), env_(*env) {
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
  };

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
    o->record_bytes = FileSize(o->dir + "/key") + FileSize(o->dir + "/roots");
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

  const PeerStoreLimits& limits() const { return limits_; }
  Env& env() { return env_; }

 private:
  std::string root_;
  PeerStoreLimits limits_;
  Env& env_;
  // Guards owners_, total_used_ and every Owner's byte counters.
  Mutex mu_;
  std::map<std::string, std::unique_ptr<Owner>> owners_ GUARDED_BY(mu_);
  uint64_t total_used_ GUARDED_BY(mu_) = 0;
};

PeerStore::PeerStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerStore::~PeerStore() = default;

Result<std::unique_ptr<PeerStore>> PeerStore::Open(const std::string& root,
                                                   PeerStoreLimits limits, Env* env) {
  auto impl = std::make_unique<Impl>(root, limits, env);
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
  Result<Impl::Owner*> o = impl_->Get(owner, /*create=*/false);
  if (!o.ok()) {
    if (o.status().code() == ErrorCode::kNotFound) return out;
    return o.status();
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    ST_ASSIGN_OR_RETURN(bool held, (*o)->chunks->Contains(ids[i]));
    out[i] = held;
  }
  return out;
}

Result<bool> PeerStore::Put(const std::string& owner, const ChunkId& id,
                            std::span<const std::byte> sealed, const BlobHash& expected_hash) {
  if (HashBlob(sealed) != expected_hash) {
    return Status(ErrorCode::kCorruption,
                  "chunk " + id.hex() + " for " + owner +
                      " arrived damaged (its hash does not match the sender's); not stored");
  }
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/true));
  ST_ASSIGN_OR_RETURN(bool held, o->chunks->Contains(id));
  if (held) return true;
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
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/true));
  return o->chunks->Flush();
}

// A copy that fails its own hash check is dropped here and now (issue 26):
// Has then says it is gone, so the owner's next backup or repair sends a
// good copy, which Put stores instead of keeping the damaged one.
Result<std::vector<std::byte>> PeerStore::Get(const std::string& owner, const ChunkId& id) {
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/false));
  Result<std::vector<std::byte>> sealed = o->chunks->Get(id);
  if (sealed.ok() || sealed.status().code() != ErrorCode::kCorruption) return sealed;
  Result<uint64_t> dropped = Release(owner, std::span(&id, 1));
  return Status(ErrorCode::kCorruption,
                sealed.status().message() +
                    (dropped.ok() ? "; this peer dropped its damaged copy"
                                  : "; dropping it failed: " + dropped.status().message()));
}

Result<uint64_t> PeerStore::Release(const std::string& owner, std::span<const ChunkId> ids) {
  Result<Impl::Owner*> held = impl_->Get(owner, /*create=*/false);
  if (!held.ok()) {
    if (held.status().code() == ErrorCode::kNotFound) return uint64_t{0};
    return held.status();
  }
  Impl::Owner* o = *held;
  PackStoreStats before = o->chunks->Stats();
  ST_RETURN_IF_ERROR(o->chunks->Remove(ids));
  PackStoreStats after = o->chunks->Stats();
  impl_->Reserve(*o, -static_cast<int64_t>(before.stored_bytes - after.stored_bytes), true)
      .IgnoreError();
  impl_->AddChunks(*o, -static_cast<int64_t>(before.chunks - after.chunks));
  return before.chunks - after.chunks;
}

Status PeerStore::PutKey(const std::string& owner, std::span<const std::byte> wrapped_key) {
  if (wrapped_key.empty() || wrapped_key.size() > PeerStoreLimits::kMaxKeyBytes) {
    return Status(ErrorCode::kInvalidArgument,
                  "a wrapped key must be 1.." + std::to_string(PeerStoreLimits::kMaxKeyBytes) +
                      " bytes, got " + std::to_string(wrapped_key.size()));
  }
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/true));
  return impl_->ReplaceFile(*o, o->dir + "/key", wrapped_key);
}

Result<std::vector<std::byte>> PeerStore::GetKey(const std::string& owner) {
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/false));
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
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/true));
  return impl_->ReplaceRoots(*o, generation, data);
}

Result<Roots> PeerStore::GetRoots(const std::string& owner) {
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/false));
  MutexLock fl(o->files_mu);
  return impl_->ReadRoots(*o);
}

Result<uint64_t> PeerStore::Scrub(const std::string& owner,
                                  const std::function<void(const ChunkId&, const Status&)>& bad) {
  ST_ASSIGN_OR_RETURN(Impl::Owner * o, impl_->Get(owner, /*create=*/false));
  std::vector<ChunkId> damaged;
  ST_ASSIGN_OR_RETURN(uint64_t checked, o->chunks->Scrub([&](const ChunkId& id, const Status& s) {
    damaged.push_back(id);
    if (bad) bad(id, s);
  }));
  ST_RETURN_IF_ERROR(Release(owner, damaged).status());  // dropped, like Get does
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

Result<uint64_t> PeerStore::DiskBytes(const std::string& owner) {
  Result<Impl::Owner*> o = impl_->Get(owner, /*create=*/false);
  if (!o.ok()) {
    if (o.status().code() == ErrorCode::kNotFound) return uint64_t{0};
    return o.status();
  }
  // packs/NN/PPPPPPPP.pack (docs/storage.md)
  const std::string packs = (*o)->dir + "/chunks/packs";
  ST_ASSIGN_OR_RETURN(std::vector<std::string> groups, ListDir(packs));
  uint64_t total = 0;
  for (const std::string& g : groups) {
    ST_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(packs + "/" + g));
    for (const std::string& n : names) {
      if (n.ends_with(".pack")) total += FileSize(packs + "/" + g + "/" + n);
    }
  }
  return total;
}

Result<OwnerUsage> PeerStore::Usage(const std::string& owner) {
  Result<Impl::Owner*> o = impl_->Get(owner, /*create=*/false);
  if (!o.ok()) {
    if (o.status().code() == ErrorCode::kNotFound) return OwnerUsage{owner, 0, 0, 0};
    return o.status();
  }
  return impl_->Usage(**o);
}

std::vector<std::string> PeerStore::Owners() { return impl_->Owners(); }
uint64_t PeerStore::TotalUsed() { return impl_->TotalUsed(); }
const PeerStoreLimits& PeerStore::limits() const { return impl_->limits(); }

}  // namespace sparetime::peerstore
