// Catalog: the SQLite (WAL) record of snapshots and of backups in progress.
//
// snapshots: one row per completed backup — id (16 hex digits), label, time,
// device identity, image size, chunk size, manifest root and the backup's
// statistics. A snapshot row is written only after its chunks and manifest
// are durable in the store.
//
// Backup progress (the BackupJournal role): while a backup runs the imager
// checkpoints which chunk indices are done, with their ids, after flushing
// the store; a later run of the same job (same device key, size, chunk size)
// resumes from that record without re-reading or re-storing those chunks.
//
// Durability: the database is opened through CatalogOptions::env (an Env
// and its SQLite VFS, base/env.h), so tests can fail or power-cut every
// write and fsync SQLite makes for AddSnapshot and the journal
// (tests/imaging/crash_catalog_test.cc).
//
// Thread safety: safe for concurrent use (one connection, serialised).
#ifndef SPARETIME_IMAGING_CATALOG_H_
#define SPARETIME_IMAGING_CATALOG_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/device.h"

namespace sparetime {

struct SnapshotStats {
  uint64_t chunks = 0;        // chunks in the image
  uint64_t holes = 0;         // all-zero chunks (not stored)
  uint64_t new_chunks = 0;    // chunks this backup added to the store
  uint64_t new_bytes = 0;     // plaintext bytes of those chunks
  uint64_t stored_bytes = 0;  // sealed bytes this backup added
  uint64_t resumed_chunks = 0;  // taken from an interrupted earlier run
  double seconds = 0;

  // {"chunks", "holes", "new_chunks", "new_bytes", "stored_bytes",
  //  "resumed_chunks", "seconds"}: CLI output and the snapshot lists peers keep.
  nlohmann::json ToJson() const;
  // kCorruption naming the missing or malformed field.
  static Result<SnapshotStats> FromJson(const nlohmann::json& j);
};

struct Snapshot {
  std::string id;
  std::string label;
  int64_t time = 0;  // Unix seconds, end of backup
  DeviceIdentity device;
  uint64_t size = 0;
  uint32_t chunk_size = 0;
  ChunkId manifest_root;
  SnapshotStats stats;
  // How the device was made consistent (issue 20): "direct" (not mounted or
  // mounted read-only), "freeze", "snapshot" (LVM), "crash" (read live while
  // mounted read-write: inconsistent), or "" (taken before schema 3).
  std::string consistency;
  bool inconsistent() const { return consistency == "crash"; }
};

// A job's resumable state: chunk index -> id, for the chunks already durable.
struct JobProgress {
  std::string job_key;
  int64_t started = 0;
  std::vector<std::pair<uint64_t, ChunkId>> done;
};

// The narrow role the imager needs for resuming (implemented by Catalog).
class BackupJournal {
 public:
  virtual ~BackupJournal() = default;
  // The recorded progress of `job_key`, or nullopt when none.
  virtual Result<std::optional<JobProgress>> LoadProgress(const std::string& job_key) = 0;
  // Appends done chunks. REQUIRES: their blobs are already durable (flushed).
  virtual Status RecordProgress(const std::string& job_key,
                                std::span<const std::pair<uint64_t, ChunkId>> done) = 0;
  // Drops the record (the job finished or was abandoned).
  virtual Status ClearProgress(const std::string& job_key) = 0;
};

// Where the imager records a finished snapshot (implemented by Catalog).
class SnapshotRecorder {
 public:
  virtual ~SnapshotRecorder() = default;
  // Assigns a fresh id when snapshot.id is empty; returns the stored snapshot.
  virtual Result<Snapshot> AddSnapshot(Snapshot snapshot) = 0;
};

struct CatalogOptions {
  Env* env = Env::Default();  // must outlive the Catalog
};

class Catalog final : public BackupJournal, public SnapshotRecorder {
 public:
  static Result<std::unique_ptr<Catalog>> Open(const std::string& db_path,
                                               CatalogOptions options = {});
  ~Catalog() override;

  Result<Snapshot> AddSnapshot(Snapshot snapshot) override;
  // Newest first.
  Result<std::vector<Snapshot>> ListSnapshots();
  // By full id, unique id prefix (at least 4 digits), or "latest" (optionally
  // restricted to one device key). kNotFound / kInvalidArgument (ambiguous).
  Result<Snapshot> FindSnapshot(const std::string& spec,
                                const std::optional<std::string>& device_key = std::nullopt);
  Status ForgetSnapshot(const std::string& id);

  Result<std::optional<JobProgress>> LoadProgress(const std::string& job_key) override;
  Status RecordProgress(const std::string& job_key,
                        std::span<const std::pair<uint64_t, ChunkId>> done) override;
  Status ClearProgress(const std::string& job_key) override;
  // Every chunk id in any job's progress (distinct): prune keeps them, since
  // an interrupted backup resumes from them without storing them again.
  Result<std::vector<ChunkId>> JournalChunkIds();
  // SQLite's quick_check (full: integrity_check) of the catalog database:
  // OK or kCorruption naming it (verify runs it first).
  Status CheckIntegrity(bool full);

  class Impl;

 private:
  explicit Catalog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_CATALOG_H_
