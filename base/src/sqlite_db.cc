// SqliteDb: RAII over sqlite3 connections, statements and transactions, with
// SQLite result codes mapped to Status (see sqlite_db.h).
//
// Invariants: every connection runs in WAL mode with synchronous=EXTRA,
// foreign keys on and a busy timeout; every statement handed out is
// finalized exactly once; a SqliteQuery always leaves its statement reset.
#include "sparetime/base/sqlite_db.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "sparetime/base/env.h"
#include "sqlite_env_vfs.h"

namespace sparetime {

namespace {

// What to tell the user to do about an error, by primary result code.
std::string_view Remedy(int primary) {
  switch (primary) {
    case SQLITE_FULL:
      return " (free some space on that filesystem and retry)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return " (another sparetime process holds it; retry when that one is done)";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return " (the database is damaged; restore it from a copy)";
    default:
      return "";
  }
}

}  // namespace

Status SqliteDb::Error(int rc, std::string_view what) const {
  const int primary = rc & 0xff;
  std::string msg = path_ + ": " + std::string(what) + ": ";
  msg += (db_ != nullptr && sqlite3_extended_errcode(db_) == rc) ? sqlite3_errmsg(db_)
                                                                 : sqlite3_errstr(rc);
  msg += Remedy(primary);
  const int sys_errno = db_ != nullptr ? sqlite3_system_errno(db_) : 0;
  switch (primary) {
    case SQLITE_FULL:
      return NoSpace(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Corruption(std::move(msg));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(std::move(msg));
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return PermissionDenied(std::move(msg));
    case SQLITE_TOOBIG:
      return InvalidArgument(std::move(msg));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return AlreadyExists(std::move(msg));
      return Internal(std::move(msg));
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      // The OS error decides (ENOSPC is kNoSpace, EACCES kPermissionDenied, ...).
      if (sys_errno != 0) return Status(ErrnoStatus("", sys_errno).code(), std::move(msg));
      return IoError(std::move(msg));
    case SQLITE_ERROR:
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_NOMEM:
      return Internal(std::move(msg));
    default:
      return IoError(std::move(msg));
  }
}

// --- SqliteQuery --------------------------------------------------------------

SqliteQuery::~SqliteQuery() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void SqliteQuery::NoteBind(int rc) {
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

SqliteQuery& SqliteQuery::Bind(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

SqliteQuery& SqliteQuery::Bind(int index, double value) {
  NoteBind(sqlite3_bind_double(stmt_, index, value));
  return *this;
}

SqliteQuery& SqliteQuery::Bind(int index, std::string_view text) {
  NoteBind(
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

SqliteQuery& SqliteQuery::Bind(int index, std::span<const std::byte> blob) {
  // A null pointer would bind NULL; an empty blob must stay a blob.
  static const std::byte kEmpty{};
  NoteBind(sqlite3_bind_blob64(stmt_, index, blob.empty() ? &kEmpty : blob.data(), blob.size(),
                               SQLITE_TRANSIENT));
  return *this;
}

Result<bool> SqliteQuery::Step() {
  if (bind_rc_ != SQLITE_OK)
    return db_.Error(bind_rc_, std::string("binding parameters of ") + sqlite3_sql(stmt_));
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_.Error(rc, sqlite3_sql(stmt_));
}

Status SqliteQuery::Run() {
  ST_ASSIGN_OR_RETURN(bool row, Step());
  if (row) return Internal(db_.path() + ": statement returned a row: " + sqlite3_sql(stmt_));
  return Status::Ok();
}

bool SqliteQuery::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t SqliteQuery::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

double SqliteQuery::Double(int column) const { return sqlite3_column_double(stmt_, column); }

std::string SqliteQuery::Text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::span<const std::byte> SqliteQuery::Blob(int column) const {
  const void* p = sqlite3_column_blob(stmt_, column);
  if (p == nullptr) return {};
  return {static_cast<const std::byte*>(p),
          static_cast<size_t>(sqlite3_column_bytes(stmt_, column))};
}

// --- SqliteStmt ---------------------------------------------------------------

SqliteStmt& SqliteStmt::operator=(SqliteStmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    o.stmt_ = nullptr;
  }
  return *this;
}

SqliteStmt::~SqliteStmt() { sqlite3_finalize(stmt_); }

// --- SqliteDb -----------------------------------------------------------------

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, Mode mode, Env* env) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (mode == Mode::kCreate) {
    flags |= SQLITE_OPEN_CREATE;
  } else {
    struct stat sb;
    if (::stat(path.c_str(), &sb) != 0) return ErrnoStatus(path, errno);
  }
  std::string vfs;
  if (env != nullptr && env != Env::Default()) {
    ST_ASSIGN_OR_RETURN(vfs, SqliteVfsFor(env));
  }
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, flags, vfs.empty() ? nullptr : vfs.c_str());
  // sqlite3_open_v2 hands back a handle even on failure; the object owns it.
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw, path));
  if (rc != SQLITE_OK) return db->Error(rc, "opening the database");
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);

  // EXTRA before the switch to WAL: the switch is a rollback-journal
  // transaction, and SQLite stays in rollback mode for this connection when
  // it fails (an fsync error, say). In rollback mode only EXTRA syncs the
  // directory after deleting the journal — the commit point — so FULL could
  // lose a committed transaction to a power cut (crash_pack_store_test found
  // it). In WAL mode EXTRA costs the same as FULL.
  ST_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=EXTRA"));
  ST_ASSIGN_OR_RETURN(SqliteStmt wal, db->Prepare("PRAGMA journal_mode=WAL"));
  {
    SqliteQuery q = wal.Query();
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row || q.Text(0) != "wal")
      return IoError(path + ": cannot switch the database to WAL mode (journal mode is '" +
                     (row ? q.Text(0) : std::string()) +
                     "'); put the repository on a local filesystem");
  }
  ST_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON;"));
  return db;
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::Exec(std::string_view sql) {
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, text);
  return Status::Ok();
}

Result<SqliteStmt> SqliteDb::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "preparing " + std::string(sql));
  return SqliteStmt(this, stmt);
}

Status SqliteDb::EnsureSchema(int version, std::string_view schema_sql) {
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*this));
  ST_ASSIGN_OR_RETURN(SqliteStmt has_meta,
                      Prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"));
  ST_ASSIGN_OR_RETURN(bool exists, has_meta.Query().Step());
  if (!exists) {
    ST_RETURN_IF_ERROR(Exec(schema_sql));
    ST_RETURN_IF_ERROR(Exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID"));
    ST_ASSIGN_OR_RETURN(SqliteStmt put,
                        Prepare("INSERT INTO meta(key, value) VALUES('schema_version', ?)"));
    ST_RETURN_IF_ERROR(put.Query().Bind(1, int64_t{version}).Run());
    return txn.Commit();
  }
  ST_ASSIGN_OR_RETURN(SqliteStmt get, Prepare("SELECT value FROM meta WHERE key='schema_version'"));
  SqliteQuery q = get.Query();
  ST_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Corruption(path_ + ": the meta table has no schema_version");
  const int64_t stored = q.Int(0);
  if (stored > version)
    return FailedPrecondition(path_ + " has schema version " + std::to_string(stored) +
                              ", newer than this sparetime understands (" +
                              std::to_string(version) + "); upgrade sparetime");
  if (stored < version)
    return FailedPrecondition(path_ + " has schema version " + std::to_string(stored) +
                              " and this sparetime cannot migrate it to " +
                              std::to_string(version));
  return Status::Ok();  // read-only check: the transaction rolls back
}

Status SqliteDb::CheckIntegrity(bool full) {
  Result<SqliteStmt> check = Prepare(full ? "PRAGMA integrity_check(20)" : "PRAGMA quick_check(20)");
  if (!check.ok()) return Corruption(check.status().message());
  SqliteQuery q = check->Query();
  std::string problems;
  for (;;) {
    Result<bool> row = q.Step();
    if (!row.ok()) return Corruption(row.status().message());  // names the file, says what to do
    if (!*row) break;
    const std::string line = q.Text(0);
    if (line == "ok") continue;
    problems += (problems.empty() ? "" : "; ") + line;
  }
  if (problems.empty()) return Status::Ok();
  return Corruption(path_ + " is damaged (SQLite " + (full ? "integrity_check" : "quick_check") +
                    ": " + problems + "); restore it from a copy");
}

int64_t SqliteDb::changes() const { return sqlite3_changes64(db_); }

int64_t SqliteDb::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

// --- SqliteTransaction --------------------------------------------------------

Result<SqliteTransaction> SqliteTransaction::Begin(SqliteDb& db) {
  ST_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  return SqliteTransaction(&db);
}

SqliteTransaction::~SqliteTransaction() {
  if (db_ != nullptr) db_->Exec("ROLLBACK").IgnoreError();  // nothing better to do here
}

Status SqliteTransaction::Commit() {
  Status st = db_->Exec("COMMIT");
  if (st.ok()) db_ = nullptr;  // on failure the destructor rolls back
  return st;
}

}  // namespace sparetime
