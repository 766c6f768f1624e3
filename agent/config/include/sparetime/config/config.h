// AgentConfig: /etc/sparetime/sparetime.conf, read by both sparetimed and the
// `sparetime` CLI (--config). INI style, like sssd.conf:
//
//     [agent]      name, listen, advertise_address, state_dir, site, heartbeat,
//                  peer_timeout
//     [storage]    capacity, owner_quota, scrub_interval
//     [directory]  uri, base, bind_dn, password_file, sasl_external,
//                  ca_file, cert_file, key_file, timeout, poll_interval,
//                  page_size, cache
//     [backup]     passphrase_file, interval, verify_interval, devices
//     [scheduler]  settle, load_grace, resume_delay, ignore_load, utmp
//
// Reference with defaults: docs/configuration.md; example: conf/sparetime.conf.
//
// Invariants: strict parsing — an unknown section or key, a duplicate key, a
// malformed size or duration is an error naming file:line and what is valid
// (a typo must not silently fall back to a default). Every value not given
// has the documented default, so a file with only [directory] works.
#ifndef SPARETIME_CONFIG_CONFIG_H_
#define SPARETIME_CONFIG_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/directory/directory.h"

namespace sparetime::config {

struct AgentConfig {
  std::string path;  // the file this came from ("" for defaults)

  // [agent]
  std::string name;                  // default: the host name (uname nodename)
  std::string listen_address = "0.0.0.0";
  uint16_t listen_port = 7401;
  std::string advertise_address;     // what peers connect to; default: the host name
  std::string state_dir = "/var/lib/sparetime";
  std::string site;                  // failure domain; default none
  // How often sparetimed re-registers (heartbeat, free space) and re-reads
  // the directory even when no change was noticed.
  std::chrono::milliseconds heartbeat{std::chrono::minutes(5)};
  // How long a peer may take to connect or answer before the session is
  // given up (then retried, then the peer is skipped for the run).
  std::chrono::milliseconds peer_timeout{std::chrono::seconds(30)};

  // [storage]
  uint64_t capacity = 0;             // bytes offered to peers; 0 = none
  uint64_t owner_quota = 0;          // per-owner cap; 0 = capacity
  // How often the idle scrub re-reads everything held for others
  // (ops/peer_scrub.h); a pass stopped midway resumes at its cursor.
  std::chrono::milliseconds scrub_interval{std::chrono::hours(24 * 7)};

  // [directory]
  directory::DirectoryConfig directory;  // uri default file:///etc/sparetime/directory.ldif
  std::string directory_cache;           // default <state_dir>/directory-cache.sqlite

  // [backup]: sparetimed's own scheduled jobs (backups of the policy's
  // devices to the peers, verify, repair, prune). The file holding the
  // backup passphrase (mode 0600); empty: sparetimed runs no jobs of its own
  // (it still serves its peers and accepts migrations).
  std::string passphrase_file;
  // [backup] devices: the devices and image files sparetimed's privileged
  // helper may open read-only (absolute paths; symlinks such as
  // /dev/vg0/root are resolved at each request). Empty: none.
  std::vector<std::string> devices;
  // Back up each device once per interval; verify (scrub) every snapshot
  // once per verify_interval.
  std::chrono::milliseconds backup_interval{std::chrono::hours(24)};
  std::chrono::milliseconds verify_interval{std::chrono::hours(24 * 7)};

  // [scheduler]: this box's hysteresis and inputs, around the directory's
  // idle policy (docs/scheduler.md). Defaults = the built-in IdlePolicy.
  std::chrono::milliseconds settle{std::chrono::seconds(60)};
  // While working, how long others' load may stay over a threshold before
  // the job backs off (user input always backs off at once).
  std::chrono::milliseconds load_grace{std::chrono::seconds(30)};
  std::chrono::milliseconds resume_delay{std::chrono::minutes(5)};
  // Decide on user input, power and windows only (not CPU, pressure, disk,
  // network load) — for boxes whose own load is not a reason to wait.
  bool ignore_load = false;
  std::string utmp = "/run/utmp";  // whose terminals count as user input

  // [metrics] textfile_dir: node_exporter's textfile collector directory;
  // sparetimed writes sparetime.prom there at each heartbeat. Empty: none.
  std::string metrics_dir = "/var/lib/prometheus/node-exporter";
  // [notify] command: run by /bin/sh -c on a job failure and when a device
  // becomes overdue, with SPARETIME_HOST, SPARETIME_DEVICE, SPARETIME_REASON
  // in its environment; killed after notify_timeout. Empty: none.
  std::string notify_command;
  std::chrono::milliseconds notify_timeout{std::chrono::seconds(30)};
};

// Reads and validates `path`. kNotFound when missing, kInvalidArgument with
// "<path>:<line>: ..." for anything malformed.
Result<AgentConfig> LoadConfig(const std::string& path);
// The same from text (tests, and `path` only names it in messages).
Result<AgentConfig> ParseConfig(const std::string& text, const std::string& path);

// "10G", "500 GiB", "1.5T", "4096" -> bytes (binary units: K = 1024).
Result<uint64_t> ParseSize(const std::string& text);
// "30s", "5m", "1h", "500ms", "90" (seconds) -> milliseconds.
Result<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace sparetime::config

#endif  // SPARETIME_CONFIG_CONFIG_H_
