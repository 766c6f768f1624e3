// Files of one owner's directory beside its pack store, for the lifecycle
// (peer_store.h "Lifecycle"): kept roots generations, the departed mark,
// byte counts and whole-directory removal. Pure functions over an Env and
// the owner's directory; PeerStore serialises calls per owner.
//
//   <dir>/history/<generation>  8-byte LE Unix seconds of its replacement,
//                               then the replaced roots file as it was
//                               (8-byte LE generation + sealed roots)
//   <dir>/departed              decimal Unix seconds the owner was first
//                               seen missing from the directory
//
// Invariants: a history entry is written (WriteFileAtomic) before the
// roots file that replaces it, so a crash between leaves a copy of the
// still-current generation, which RootsHistory hides (generation not below
// the current one) and the next expiry deletes. Every removal syncs its
// directory.
#ifndef SPARETIME_PEERSTORE_OWNER_FILES_H_
#define SPARETIME_PEERSTORE_OWNER_FILES_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"

namespace sparetime::peerstore::owner_files {

struct HistoryEntry {
  uint64_t generation = 0;
  int64_t replaced_at = 0;
  uint64_t file_bytes = 0;  // of the history file
};

// Keeps `old_roots_file` (the whole roots file being replaced, generation
// first) as a history entry replaced at `now`.
Status KeepGeneration(Env& env, const std::string& dir, std::span<const std::byte> old_roots_file,
                      int64_t now);
// The entries, by generation ascending (unreadable names are skipped).
Result<std::vector<HistoryEntry>> ListHistory(const std::string& dir);
// The roots file kept for `generation` (without the 8-byte time).
Result<std::string> ReadGeneration(Env& env, const std::string& dir, uint64_t generation);
// Deletes entries replaced at least `grace_seconds` before `now`, and those
// not below `current` (a crash's leftover). Returns how many, and their bytes.
Result<std::pair<uint64_t, uint64_t>> ExpireHistory(Env& env, const std::string& dir,
                                                    uint64_t current, int64_t now,
                                                    int64_t grace_seconds);
uint64_t HistoryBytes(const std::string& dir);

// The departed mark: when the owner was first seen missing, if marked.
std::optional<int64_t> DepartedSince(Env& env, const std::string& dir);
Status MarkDeparted(Env& env, const std::string& dir, int64_t now);
Status ClearDeparted(Env& env, const std::string& dir);

// Sum of the sizes of every regular file under `dir`.
uint64_t TreeBytes(const std::string& dir);
// Deletes `dir` and everything under it through `env`, deepest first, then
// syncs its parent.
Status RemoveTree(Env& env, const std::string& dir);

}  // namespace sparetime::peerstore::owner_files

#endif  // SPARETIME_PEERSTORE_OWNER_FILES_H_
