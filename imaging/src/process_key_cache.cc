// ProcessKeyCache: KeyCache entries kept in this process's sodium memory,
// under a mutex, until the cache is destroyed.
#include <map>
#include <mutex>

#include "sparetime/imaging/key_cache.h"

namespace sparetime {
namespace {

class ProcessKeyCacheImpl : public KeyCache {
 public:
  std::optional<SecretBuffer> Find(const std::string& name) const override {
    std::lock_guard lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return std::nullopt;
    return it->second.Clone();
  }

  void Keep(const std::string& name, const SecretBuffer& payload) const override {
    SecretBuffer copy = payload.Clone();
    std::lock_guard lock(mu_);
    entries_.insert_or_assign(name, std::move(copy));
  }

 private:
  mutable std::mutex mu_;
  mutable std::map<std::string, SecretBuffer> entries_;
};

}  // namespace

std::unique_ptr<KeyCache> ProcessKeyCache() { return std::make_unique<ProcessKeyCacheImpl>(); }

}  // namespace sparetime
