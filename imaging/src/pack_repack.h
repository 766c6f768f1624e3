// Pack creation and repacking for the PackStore (see pack_store.h).
//
// All file operations go through `env` (options.env for RepackPacks).
//
// CreatePackFile: a new pack — its index row first (committed_size 0), then
// the file, locked (flock LOCK_EX) before its header is written and synced,
// so a concurrent Open sees an empty unlocked file or a locked one. A file
// already there under the new id is an orphan of a failed birth (no row
// ever named it) and is reused from empty.
//
// RepackPacks: first deletes every pack no row points into (all its
// records dead, or empty) — that needs no free space, so a full disk gets
// room back before anything is written — then rewrites packs whose live
// records fill less than a fraction of them. ENOSPC while rewriting stops
// it cleanly: the new packs are cut back to what the index holds (or
// deleted), old packs whose rows did not move stay, and the report's
// `stopped` carries the error; what was freed before stays freed. Per old pack: copy its live records (hash-checked) into new
// packs, fsync those, move the rows and the new committed sizes in one index
// transaction, then unlink the old file and drop its row. A crash before the
// transaction leaves the old pack in use and unindexed records in a new
// one (Open's tail recovery leaves already-indexed ids where they are); a
// crash after it leaves an old pack with no live rows, which the next repack
// deletes. Empty packs (committed_size at most the header, no rows: a
// creation or a repack cut short) are deleted with their rows. Packs another
// writer holds locked, and the caller's own open packs, are skipped.
#ifndef SPARETIME_IMAGING_PACK_REPACK_H_
#define SPARETIME_IMAGING_PACK_REPACK_H_

#include <cstdint>
#include <set>

#include "pack_index.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/pack_store.h"

namespace sparetime {

struct NewPack {
  PackInfo info;
  Fd fd;  // read-write, flock(LOCK_EX) held, header written and synced
};
Result<NewPack> CreatePackFile(Env& env, PackIndex& index);

// REQUIRES: the caller flushed its writes and appends to no pack meanwhile;
// nobody reads the store meanwhile (the repository lock is held exclusively).
Result<RepackReport> RepackPacks(PackIndex& index, const PackStoreOptions& options,
                                 const std::set<uint64_t>& own_packs, double live_fraction);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PACK_REPACK_H_
