// DirectoryClient: what the agent and the CLI use. It reads the directory
// through a backend, interprets it, and keeps the last good read in an SQLite
// cache so that the agent keeps working on the last known peers and policy
// while the directory is unreachable — and says so.
//
// Invariants: the cache is only ever replaced by a complete, successful read;
// a failed refresh never loses the cached state. Not thread-safe.
#ifndef SPARETIME_DIRECTORY_CLIENT_H_
#define SPARETIME_DIRECTORY_CLIENT_H_

#include <memory>
#include <optional>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/directory/directory.h"
#include "sparetime/directory/policy.h"
#include "sparetime/directory/records.h"

namespace sparetime::directory {

struct DirectoryState {
  DirectoryView view;
  TimePoint fetched_at{};     // when this content was read from the directory
  bool from_cache = false;    // the directory was unreachable; this is the cache
  std::string cache_reason;   // why (the backend's error), when from_cache
  std::string source;         // Directory::Describe()
};

class DirectoryClient {
 public:
  // `cache_path`: the SQLite cache file (created if missing); empty = no cache.
  static Result<std::unique_ptr<DirectoryClient>> Open(std::unique_ptr<Directory> backend,
                                                        std::string cache_path,
                                                        const Clock& clock = SystemClock());
  ~DirectoryClient();

  // Reads the directory; on success updates the cache and returns fresh
  // state; when the directory is unreachable returns the cached state marked
  // from_cache. Fails only when the directory is unreachable and there is no
  // cache (kUnavailable, saying so).
  Result<DirectoryState> Refresh();

  // Registers (heartbeat) through the backend.
  Status Register(const AgentRegistration& self);

  // The backend's change notification (see Directory::WaitForChange).
  Result<bool> WaitForChange(std::chrono::milliseconds max_wait);

  Directory& backend();

 private:
  class Impl;
  explicit DirectoryClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_CLIENT_H_
