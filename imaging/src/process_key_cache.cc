// ProcessKeyCache: KeyCache entries kept in this process's sodium memory,
// under a mutex, until the cache is destroyed.
#include <map>

#include "sparetime/base/mutex.h"
#include "sparetime/imaging/key_cache.h"

namespace sparetime {
namespace {

class ProcessKeyCacheImpl : public KeyCache {
 public:
  std::optional<SecretBuffer> Find(const std::string& name) const override EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return std::nullopt;
    return it->second.Clone();
  }

  void Keep(const std::string& name, const SecretBuffer& payload) const override EXCLUDES(mu_) {
    SecretBuffer copy = payload.Clone();
    MutexLock lock(mu_);
    entries_.insert_or_assign(name, std::move(copy));
  }

 private:
  mutable Mutex mu_;
  mutable std::map<std::string, SecretBuffer> entries_ GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<KeyCache> ProcessKeyCache() { return std::make_unique<ProcessKeyCacheImpl>(); }

}  // namespace sparetime
