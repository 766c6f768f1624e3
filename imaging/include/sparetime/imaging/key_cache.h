// KeyCache: where an unlocked master key may stay for a few minutes between
// commands, so that `init`, `backup`, `snapshots` and `restore` run one after
// another do not each pay Argon2id again (0.6 s and 256 MiB at "moderate").
//
// The cache stores opaque, named payloads; what goes in them (the master key
// and a tag that proves the passphrase) is decided by UnlockMasterKey in
// keys.h, and documented in docs/formats.md ("Key cache"). Using a cache is
// always optional: a cache that cannot be read or written is a miss, never an
// error, and the caller falls back to Argon2id.
//
// Invariants: payloads are read into and written from SecretBuffers only.
#ifndef SPARETIME_IMAGING_KEY_CACHE_H_
#define SPARETIME_IMAGING_KEY_CACHE_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"

namespace sparetime {

class KeyCache {
 public:
  virtual ~KeyCache() = default;
  // The payload kept under `name`, or nullopt (never kept, expired, or the
  // cache cannot be read).
  virtual std::optional<SecretBuffer> Find(const std::string& name) const = 0;
  // Keeps `payload` under `name`, replacing what was there. Best effort.
  virtual void Keep(const std::string& name, const SecretBuffer& payload) const = 0;
};

// The calling user's kernel keyring (keyrings(7), like cryptsetup's volume
// keys and systemd-ask-password's cache): "user" keys named
// "sparetime:<name>" in the user keyring, usable only by this uid (possessor
// and user may view, read, search and set attributes; nobody else anything),
// destroyed by the kernel `lifetime` after Keep. Kernel memory: nothing of it
// is in the process's RSS or ever swapped to a file.
std::unique_ptr<KeyCache> KernelKeyCache(std::chrono::seconds lifetime);

// A cache inside this process: entries live in its sodium memory (locked,
// zeroed when replaced or when the cache dies) for as long as the cache
// does. What a long-running daemon uses, so that its scheduled jobs run
// Argon2id once, not once per job. Thread-safe.
std::unique_ptr<KeyCache> ProcessKeyCache();

// Removes every sparetime entry from the calling user's keyring (what
// `sparetime lock` does). Returns how many were removed.
Result<int> ForgetKernelCachedKeys();

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_KEY_CACHE_H_
