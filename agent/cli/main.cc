// `sparetime`: the command-line interface. Parses arguments (CLI11), installs
// the interrupt handler, dispatches to a subcommand, and is the only place
// exceptions are caught (mapped to exit codes, see exit_codes.h).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "commands.h"
#include "directory_commands.h"
#include "fleet_command.h"
#include "status_command.h"
#include "exit_codes.h"
#include "key_commands.h"
#include "migration_commands.h"
#include "mount_command.h"
#include "prune_command.h"
#include "sparetime/base/allocator.h"
#include "sparetime/ops/signals.h"

namespace {

std::atomic<bool> g_interrupted{false};

void OnSignal(int) {
  // The first signal asks the running job to stop cleanly (it checkpoints);
  // a second one kills the process the default way.
  g_interrupted.store(true);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
}

int Main(int argc, char** argv) {
  using namespace sparetime::cli;
  CLI::App app{"sparetime: idle-time, encrypted, deduplicated block-device backup"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.set_version_flag("--version", "sparetime 0.1.0");

  GlobalOptions g;
  g.interrupted = &g_interrupted;
  std::string passphrase_file;
  app.add_option("--repo", g.repo, "repository directory")->envname("SPARETIME_REPO");
  app.add_option("--config", g.config,
                 "agent configuration file (default /etc/sparetime/sparetime.conf)")
      ->envname("SPARETIME_CONFIG");
  app.add_option("--passphrase-file", passphrase_file,
                 "read the passphrase from this file (mode 0600) instead of $SPARETIME_PASSPHRASE");
  app.add_option("--key-cache", g.key_cache_seconds,
                 "keep the unlocked key in the kernel keyring this many seconds, so the next "
                 "commands skip Argon2id (default 300; 0: never)")
      ->envname("SPARETIME_KEY_CACHE")
      ->check(CLI::Range(int64_t{0}, int64_t{86400}));
  app.add_flag("--json", g.json, "print machine-readable JSON on stdout");
  app.add_flag("-q,--quiet", g.quiet, "print nothing but errors");

  InitOptions init;
  auto* init_cmd = app.add_subcommand("init", "create a new repository");
  init_cmd->add_option("--chunk-size", init.chunk_size,
                       "chunk size in bytes (power of two, 65536..4194304; default: the policy's "
                       "sparetimeChunkSize for backups on peers, else 1048576)");
  init_cmd->add_option("--compression", init.compression,
                       "zstd level 0..19 (0: none; default: the policy's "
                       "sparetimeCompressionLevel for backups on peers, else 3)")
      ->check(CLI::Range(0, 19));
  init_cmd->add_option("--kdf", init.kdf, "Argon2id cost: moderate (default), interactive, min")
      ->check(CLI::IsMember({"moderate", "interactive", "min"}));
  init_cmd->add_option("--id-hash", init.id_hash,
                       "keyed chunk-id function, fixed for the repository's life: auto (default: "
                       "hmac-sha256 when the CPU has SHA extensions, else blake2b), hmac-sha256, "
                       "blake2b")
      ->check(CLI::IsMember({"auto", "hmac-sha256", "blake2b"}));

  BackupCommandOptions backup;
  auto* backup_cmd = app.add_subcommand("backup", "image a block device or image file");
  backup_cmd->add_option("device", backup.device, "block device or image file")->required();
  backup_cmd->add_option("--label", backup.label, "a label for the snapshot");
  backup_cmd->add_flag("--buffered", backup.buffered,
                       "read through the page cache instead of with O_DIRECT");
  backup_cmd->add_option("--checkpoint-mib", backup.checkpoint_mib,
                         "make progress durable every N MiB, so an interrupted backup resumes "
                         "from there (default 256)")
      ->check(CLI::Range(1, 1 << 20));
  backup_cmd->add_option("--consistency", backup.consistency,
                         "auto (default: not mounted/read-only: direct; LVM: snapshot; mounted "
                         "read-write: refused), snapshot (LVM), freeze (FIFREEZE the mounted "
                         "filesystem), crash (read live, recorded as inconsistent); default: the "
                         "policy's sparetimeConsistencyMode")
      ->check(CLI::IsMember({"auto", "snapshot", "freeze", "crash"}, CLI::ignore_case));
  backup_cmd->add_option("--max-freeze", backup.max_freeze_seconds,
                         "longest freeze in seconds (default: the policy's "
                         "sparetimeMaxFreezeSeconds, else 30)")
      ->check(CLI::Range(1, 3600));
  backup_cmd->add_option("--snapshot-size", backup.snapshot_size,
                         "copy-on-write space of a classic LVM snapshot, e.g. 2G (default: the "
                         "policy's sparetimeSnapshotSize, else 10% of the volume)");
  backup_cmd->add_flag("--all-blocks", backup.all_blocks,
                       "read every block, free space included (a raw, forensic image); by "
                       "default only the blocks ext4/xfs use are read");
  AddIdleBackupOptions(backup_cmd, &backup.idle);

  auto* snapshots_cmd = app.add_subcommand("snapshots", "list snapshots");
  const char* kHostHelp = "another agent's backups, read from the peers (with --config)";
  snapshots_cmd->add_option("--host", g.host, kHostHelp);

  RestoreCommandOptions restore;
  auto* restore_cmd = app.add_subcommand("restore", "write a snapshot to a device or file");
  restore_cmd->add_option("snapshot", restore.snapshot, "snapshot id, unique prefix, or 'latest'")
      ->required();
  restore_cmd->add_option("--to", restore.target, "target device or file")->required();
  restore_cmd->add_option("--device", restore.device,
                          "with 'latest': the newest snapshot of this device (its path as backed "
                          "up, or its device key); required when the backups hold several");
  restore_cmd->add_flag("--truncate", restore.truncate,
                        "cut an existing target file larger than the image to the image size "
                        "(default: it keeps its size and the bytes past the image)");
  restore_cmd->add_option("--host", g.host, kHostHelp);
  restore_cmd->add_flag("--zero-holes", restore.zero_holes,
                        "write zeroes for all-zero chunks on block devices");
  restore_cmd->add_flag("--buffered", restore.buffered,
                        "write through the page cache instead of with O_DIRECT");
  restore_cmd->add_option("--partition", restore.partition,
                          "restore only partition N of a whole-disk snapshot (as `snapshots` "
                          "lists them) to the start of the target")
      ->check(CLI::Range(1u, 1u << 20));
  restore_cmd->add_flag("--keep-going", restore.keep_going,
                        "write every good chunk and zeroes where chunks are damaged, then list "
                        "the damaged offsets (exit code 6)");

  std::string restore_file;
  restore_cmd->add_option("--file", restore_file,
                          "copy only this file or directory tree out of the snapshot's "
                          "filesystem (partN/PATH, or /PATH when it has one), to --to");

  MountCommandOptions mount;
  auto* mount_cmd = app.add_subcommand(
      "mount", "show a snapshot as DIR/disk.img and DIR/partN.img (read-only FUSE) and mount its "
               "filesystems under DIR/partN/; runs until Ctrl-C or `sparetime umount DIR`");
  mount_cmd->add_option("snapshot", mount.snapshot, "snapshot id, unique prefix, or 'latest'")
      ->required();
  mount_cmd->add_option("dir", mount.dir, "an empty directory")->required();
  mount_cmd->add_option("--device", mount.device, "with 'latest': the newest snapshot of this device");
  mount_cmd->add_option("--host", g.host, kHostHelp);
  mount_cmd->add_option("--filesystems", mount.filesystems,
                        "also mount the ext4/xfs filesystems read-only under DIR/partN/ "
                        "(true/false; default: true on a terminal)");
  mount_cmd->add_option("--cache-mib", mount.cache_mib, "chunk cache size in MiB (default 256)")
      ->check(CLI::Range(8, 1 << 16));
  mount_cmd->add_option("--hold", mount.hold_seconds,
                        "with --host: seconds each read hold on the peers lasts unless renewed "
                        "(renewed every third; default 120)")
      ->check(CLI::Range(3, 3600));
  std::string umount_dir;
  auto* umount_cmd = app.add_subcommand("umount", "unmount what `sparetime mount` mounted at DIR");
  umount_cmd->add_option("dir", umount_dir, "the mount directory")->required();

  std::string verify_snapshot;
  auto* verify_cmd = app.add_subcommand("verify", "read and check every chunk of snapshots");
  verify_cmd->add_option("snapshot", verify_snapshot, "one snapshot (default: all)");
  verify_cmd->add_option("--host", g.host, kHostHelp);
  bool verify_full = false;
  verify_cmd->add_flag("--full", verify_full,
                       "SQLite integrity_check of catalog and index (default: quick_check)");

  std::string forget_snapshot;
  auto* forget_cmd = app.add_subcommand("forget", "remove a snapshot from the catalog");
  forget_cmd->add_option("snapshot", forget_snapshot, "snapshot id or unique prefix")->required();

  PruneCommandOptions prune;
  auto* prune_cmd = app.add_subcommand(
      "prune", "forget snapshots by the retention policy and free the chunks no snapshot uses");
  AddPruneOptions(prune_cmd, &prune);

  auto* repair_cmd = app.add_subcommand(
      "repair", "peers: copy chunks whose peers are gone or lost them to other peers; a local "
                "repository: store damaged chunks again from --source");
  std::string repair_source;
  repair_cmd->add_option("--source", repair_source,
                         "with --repo: the device or image file the snapshots were taken of");

  auto* lock_cmd = app.add_subcommand(
      "lock", "forget every unlocked key this user has in the kernel keyring (like sudo -k)");
  auto* status_cmd = app.add_subcommand("status", "show what the running sparetimed reports");
  bool probe = false;
  auto* peers_cmd = app.add_subcommand("peers", "show the peers this agent sees in its directory");
  peers_cmd->add_flag("--probe", probe,
                      "connect to each live peer and show what it holds for this agent");
  bool orphans = false;
  std::string purge_host;
  peers_cmd->add_flag("--orphans", orphans,
                      "list the owners this agent holds data for whose directory entry is gone");
  peers_cmd->add_option("--purge", purge_host,
                        "delete now what this agent holds for HOST (only when HOST's directory "
                        "entry is gone)");
  std::string policy_host;
  auto* policy_cmd =
      app.add_subcommand("policy", "show this host's effective policy and where each value is from");
  policy_cmd->add_option("--host", policy_host, "another host's policy (default: this agent)");

  auto* fleet_cmd = app.add_subcommand(
      "fleet", "every host of the domain: age of its last good backups, overdue, replica health");

  MigrationCommands migration(app);
  KeyCommands keys(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (!passphrase_file.empty()) g.passphrase_file = passphrase_file;
  sparetime::ops::InstallStopSignals(OnSignal);

  if (*init_cmd) return RunInit(g, init);
  if (*backup_cmd) return RunBackup(g, backup);
  if (*snapshots_cmd) return RunSnapshots(g);
  if (*restore_cmd && !restore_file.empty()) {
    return RunRestoreFile(g, {.snapshot = restore.snapshot,
                              .device = restore.device,
                              .path = restore_file,
                              .dest = restore.target});
  }
  if (*restore_cmd) return RunRestore(g, restore);
  if (*mount_cmd) return RunMount(g, mount);
  if (*umount_cmd) return RunUmount(g, umount_dir);
  if (*verify_cmd) {
    return RunVerify(g,
                     verify_snapshot.empty() ? std::nullopt
                                             : std::optional<std::string>(verify_snapshot),
                     verify_full);
  }
  if (*forget_cmd) return RunForget(g, forget_snapshot);
  if (*prune_cmd) return RunPrune(g, prune);
  if (*repair_cmd) return RunRepair(g, repair_source);
  if (*lock_cmd) return RunLock(g);
  if (*status_cmd) return RunStatus(g);
  if (*peers_cmd && orphans) return RunOrphans(g);
  if (*peers_cmd && !purge_host.empty()) return RunPurge(g, purge_host);
  if (*peers_cmd) return RunPeers(g, probe);
  if (*policy_cmd) return RunPolicy(g, policy_host);
  if (*fleet_cmd) return RunFleet(g);
  if (auto rc = migration.Run(g)) return *rc;
  if (auto rc = keys.Run(g)) return *rc;
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  sparetime::KeepChunkBuffers();
  try {
    return Main(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fputs("sparetime: out of memory\n", stderr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparetime: internal error: %s\n", e.what());
  }
  return sparetime::cli::kExitFailure;
}
