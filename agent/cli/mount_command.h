// `sparetime mount SNAPSHOT DIR`, `sparetime umount DIR` and
// `sparetime restore SNAPSHOT --file PATH --to DEST`. The use cases are in
// agent/ops (ops/mount.h); this file only joins them with the FUSE server
// (agent/fusefs, the one place libfuse3 is linked) and prints.
#ifndef SPARETIME_AGENT_CLI_MOUNT_COMMAND_H_
#define SPARETIME_AGENT_CLI_MOUNT_COMMAND_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "commands.h"

namespace sparetime::cli {

struct MountCommandOptions {
  std::string snapshot;
  std::string dir;
  std::string device;
  std::optional<bool> filesystems;  // default: stdout is a terminal
  uint64_t cache_mib = 256;
  uint32_t hold_seconds = 120;  // --host: read holds on the peers (ops::SnapshotHold)
};

struct RestoreFileOptions {
  std::string snapshot;
  std::string device;
  std::string path;  // in the snapshot: partN/..., disk/..., or /... when one filesystem
  std::string dest;
};

int RunMount(const GlobalOptions& g, const MountCommandOptions& o);
int RunUmount(const GlobalOptions& g, const std::string& dir);
int RunRestoreFile(const GlobalOptions& g, const RestoreFileOptions& o);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_MOUNT_COMMAND_H_
