// An SQLite VFS that sends a database's durable I/O through an Env.
//
// A shim over SQLite's own "unix" VFS: the main database, its WAL and its
// rollback journal are opened twice — once through the Env (every read,
// write, truncate, fsync and the size come from that fd) and once through
// the unix VFS, which keeps doing what is not durable data: POSIX locks, the
// -shm wal-index (rebuilt from the WAL after a crash), temp files, names.
// Creating and deleting the journal/WAL go through Env::Open/Unlink, and the
// first Sync of a newly created one also syncs its directory, as the unix
// VFS does.
//
// Invariants: one VFS per Env, registered on first use under a name made
// from the Env's address and unregistered when the Env is destroyed (an Env
// must outlive the databases opened through it); never the default VFS.
// Env::Default() does not use it: SqliteDb opens through the unix VFS then.
#ifndef SPARETIME_BASE_SRC_SQLITE_ENV_VFS_H_
#define SPARETIME_BASE_SRC_SQLITE_ENV_VFS_H_

#include <string>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"

namespace sparetime {

// The registered VFS name for `env`, registering it on first use.
Result<std::string> SqliteVfsFor(Env* env);
// Unregisters `env`'s VFS, if any (from Env::~Env).
void ReleaseSqliteVfs(Env* env);

}  // namespace sparetime

#endif  // SPARETIME_BASE_SRC_SQLITE_ENV_VFS_H_
