// SqliteDb: the one small RAII wrapper over sqlite3 that the pack index and
// the catalog share.
//
// Every database is opened in WAL mode with synchronous=EXTRA (a committed
// transaction survives power loss: PackStore::Flush and Catalog::AddSnapshot
// promise durability) and a busy timeout, so several processes can share it:
// readers never block, writers queue for up to the timeout. Errors become
// Status values whose message names the database path.
//
// SqliteStmt owns a prepared statement (finalized on destruction);
// SqliteQuery is one use of it, and resets it and clears its bindings when it
// goes out of scope, so a half-read statement never keeps a read transaction
// open. SqliteTransaction is BEGIN IMMEDIATE ... COMMIT that rolls back when
// destroyed uncommitted.
//
// Env: Open takes an Env (env.h). With a non-default one the database, its
// WAL and its journal are read, written, fsynced and deleted through an
// SQLite VFS that calls that Env (base/src/sqlite_env_vfs.h), so injected
// faults and simulated power cuts reach SQLite's own I/O; with
// Env::Default() (or null) SQLite's unix VFS is used unchanged.
//
// Thread safety: none. A connection and its statements are used by one
// thread at a time; the owners serialise access with their own mutex.
#ifndef SPARETIME_BASE_SQLITE_DB_H_
#define SPARETIME_BASE_SQLITE_DB_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "sparetime/base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sparetime {

class Env;
class SqliteDb;

// One execution of a prepared statement. Bind errors are reported by Step().
class SqliteQuery {
 public:
  SqliteQuery(const SqliteQuery&) = delete;
  SqliteQuery& operator=(const SqliteQuery&) = delete;
  ~SqliteQuery();

  // Parameters are 1-based. Text and blobs are copied by SQLite.
  SqliteQuery& Bind(int index, int64_t value);
  SqliteQuery& Bind(int index, double value);
  SqliteQuery& Bind(int index, std::string_view text);
  SqliteQuery& Bind(int index, std::span<const std::byte> blob);

  // Advances: true when a row is ready to read, false when done.
  Result<bool> Step();
  // Runs a statement that returns no rows.
  Status Run();

  // Columns of the current row, 0-based.
  bool IsNull(int column) const;
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  std::span<const std::byte> Blob(int column) const;  // valid until the next Step

 private:
  friend class SqliteStmt;
  SqliteQuery(SqliteDb& db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void NoteBind(int rc);

  SqliteDb& db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = 0;  // first failed bind, reported by Step
};

// An owned prepared statement.
class SqliteStmt {
 public:
  SqliteStmt() = default;
  SqliteStmt(SqliteStmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  SqliteStmt& operator=(SqliteStmt&& o) noexcept;
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  ~SqliteStmt();

  // Starts a use of the statement. At most one query per statement at a time.
  SqliteQuery Query() { return SqliteQuery(*db_, stmt_); }

 private:
  friend class SqliteDb;
  SqliteStmt(SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteDb* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteDb {
 public:
  enum class Mode { kCreate, kExisting };
  static constexpr int kBusyTimeoutMs = 60'000;

  // Opens `path` (kExisting: kNotFound when it does not exist) in WAL mode,
  // through `env` (null: Env::Default()). The Env must outlive the SqliteDb.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path, Mode mode,
                                                Env* env = nullptr);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  const std::string& path() const { return path_; }

  // Runs SQL text (one or more statements) that returns no rows.
  Status Exec(std::string_view sql);
  Result<SqliteStmt> Prepare(std::string_view sql);

  // On a database without a schema, runs `schema_sql` and records
  // `version` in meta(key, value) as schema_version, in one transaction.
  // Otherwise checks the stored version: a newer one is kFailedPrecondition
  // (written by a newer sparetime), as is an older one (no migrations yet).
  Status EnsureSchema(int version, std::string_view schema_sql);

  // PRAGMA quick_check (full: integrity_check, which also compares every
  // index with its table): OK, or kCorruption naming the file, the first
  // problems SQLite reports and what to do.
  Status CheckIntegrity(bool full);

  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t changes() const;
  int64_t last_insert_rowid() const;

  // The Status for SQLite result code `rc` while doing `what`, naming the
  // database: "<path>: <what>: <sqlite message>".
  Status Error(int rc, std::string_view what) const;

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

// BEGIN IMMEDIATE (takes the write lock now, waiting up to the busy
// timeout); rolls back on destruction unless Commit() succeeded.
class SqliteTransaction {
 public:
  static Result<SqliteTransaction> Begin(SqliteDb& db);
  SqliteTransaction(SqliteTransaction&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  SqliteTransaction(const SqliteTransaction&) = delete;
  ~SqliteTransaction();

  Status Commit();

 private:
  explicit SqliteTransaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;  // null once committed or moved from
};

}  // namespace sparetime

#endif  // SPARETIME_BASE_SQLITE_DB_H_
