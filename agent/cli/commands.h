// The `sparetime` subcommands over a local repository or this agent's
// backups on its peers. Each parses nothing more, calls the use case in
// agent/ops (ops/backup.h, snapshots.h, maintenance.h), renders its typed
// report as text or JSON, and maps a failed Status to an exit code
// (exit_codes.h): one line on stderr that says what failed and what to do.
#ifndef SPARETIME_AGENT_CLI_COMMANDS_H_
#define SPARETIME_AGENT_CLI_COMMANDS_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "idle_backup.h"
#include "sparetime/imaging/codec.h"

namespace sparetime::cli {

struct GlobalOptions {
  std::string repo;  // --repo or $SPARETIME_REPO
  std::string config;  // --config or $SPARETIME_CONFIG (agent config file)
  std::string host;    // --host: another agent's backups on the peers (read only)
  std::optional<std::string> passphrase_file;
  int64_t key_cache_seconds = 300;  // --key-cache: keep the unlocked key this long (0: never)
  bool json = false;
  bool quiet = false;
  const std::atomic<bool>* interrupted = nullptr;  // set by SIGINT/SIGTERM
};

struct InitOptions {
  std::optional<uint32_t> chunk_size;  // none: the policy's (peers) or 1 MiB
  std::optional<int> compression;      // none: the policy's (peers) or the default level
  std::string kdf = "moderate";  // moderate | interactive | min (tests only)
  std::string id_hash = "auto";  // auto | hmac-sha256 | blake2b
};
struct BackupCommandOptions {
  std::string device;
  std::string label;
  bool buffered = false;  // page cache reads, not O_DIRECT
  uint64_t checkpoint_mib = 256;  // journal progress every this many MiB
  bool all_blocks = false;        // --all-blocks: read free space too (raw image)
  IdleBackupOptions idle;         // --when-idle and its options
  // --consistency, --max-freeze, --snapshot-size; unset: the directory
  // policy's (agent config), else auto / 30 s / 10% of the LV.
  std::optional<std::string> consistency;
  std::optional<uint32_t> max_freeze_seconds;
  std::optional<std::string> snapshot_size;
};
struct RestoreCommandOptions {
  std::string snapshot;
  std::string device;  // --device: whose "latest"
  std::string target;
  bool truncate = false;  // --truncate: cut a larger target file to the image size
  bool zero_holes = false;
  bool buffered = false;  // page cache writes, not O_DIRECT
  bool keep_going = false;  // zeroes for damaged chunks, list them, exit 6
  uint32_t partition = 0;   // --partition N: one partition of a whole-disk snapshot
};

int RunInit(const GlobalOptions& g, const InitOptions& o);
int RunBackup(const GlobalOptions& g, const BackupCommandOptions& o);
int RunSnapshots(const GlobalOptions& g);
int RunLock(const GlobalOptions& g);
int RunRestore(const GlobalOptions& g, const RestoreCommandOptions& o);
// `full`: SQLite integrity_check of catalog and index (default quick_check).
int RunVerify(const GlobalOptions& g, const std::optional<std::string>& snapshot, bool full);
int RunForget(const GlobalOptions& g, const std::string& snapshot);
// Peers: re-replicates chunks whose holders are gone. A local repository:
// stores damaged chunks again from `source` (a device; may be empty).
int RunRepair(const GlobalOptions& g, const std::string& source);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_COMMANDS_H_
