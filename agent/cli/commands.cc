// Subcommand implementations: open the repository (passphrase first), run
// the imaging pipeline, print a human summary or JSON.
#include "commands.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backup_target.h"
#include "exit_codes.h"
#include "format.h"
#include "progress_bar.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/key_cache.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/restorer.h"

namespace sparetime::cli {
namespace {

nlohmann::json SnapshotJson(const Snapshot& s) {
  return {{"id", s.id},
          {"label", s.label},
          {"time", IsoTime(s.time)},
          {"unix_time", s.time},
          {"device", s.device.path},
          {"device_key", s.device.Key()},
          {"identity", s.device.ToJson()},
          {"size", s.size},
          {"chunk_size", s.chunk_size},
          {"manifest", s.manifest_root.hex()},
          {"stats", s.stats.ToJson()}};
}

bool ShowProgress(const GlobalOptions& g) { return !g.json && !g.quiet; }

}  // namespace

int RunInit(const GlobalOptions& g, const InitOptions& o) {
  KdfLimits limits = o.kdf == "min"           ? KdfLimits::FastForTests()
                     : o.kdf == "interactive" ? KdfLimits::Interactive()
                                              : KdfLimits::Moderate();
  RepositoryConfig config{.chunk_size = o.chunk_size, .zstd_level = o.compression};
  int rc = kExitOk;
  if (!InitTarget(g, config, limits, &rc).ok()) return rc;
  const std::string where = g.repo.empty() ? "this agent's peers" : g.repo;
  if (g.json) {
    std::cout << nlohmann::json{{"repository", where}}.dump() << "\n";
  } else if (!g.quiet) {
    std::cout << "created sparetime repository at " << where << "\n"
              << "keep the passphrase safe: without it the backups cannot be read\n";
  }
  return kExitOk;
}

int RunBackup(const GlobalOptions& g, const BackupCommandOptions& o) {
  int rc = kExitOk;
  auto repo = OpenTarget(g, &rc);
  if (!repo.ok()) return rc;
  auto device = OpenBlockDevice(o.device, {.direct_io = !o.buffered});
  if (!device.ok()) return Fail(device.status(), Stage::kWork);

  ProgressBar bar("backup", ShowProgress(g));
  BackupOptions options;
  options.chunk_size = (*repo)->config().chunk_size;
  options.label = o.label;
  options.progress = bar.Callback();
  options.cancel = g.interrupted;
  options.checkpoint_bytes = std::max<uint64_t>(1, o.checkpoint_mib) << 20;
  Catalog& catalog = (*repo)->catalog();
  BackupEnv env{(*repo)->codec(), (*repo)->sink(), catalog, catalog};
  IdleRunReport idle;
  Result<Snapshot> snap = o.idle.when_idle
                              ? BackupWhenIdle(g, o.idle, **device, env, options, &idle)
                              : Backup(**device, env, options);
  if (!snap.ok()) {
    PrintWarnings(g, **repo);
    return Fail(snap.status().WithContext("backup of " + o.device), Stage::kWork);
  }
  if (Status st = (*repo)->Commit(); !st.ok()) {
    return Fail(st.WithContext("snapshot " + snap->id + " is stored but its peers did not get "
                               "the new snapshot list; run the backup again"),
                Stage::kWork);
  }
  PrintWarnings(g, **repo);

  const SnapshotStats& s = snap->stats;
  if (g.json) {
    nlohmann::json out = SnapshotJson(*snap);
    if (o.idle.when_idle) out["idle"] = IdleReportJson(idle);
    std::cout << out.dump() << "\n";
  } else if (!g.quiet) {
    std::printf("snapshot %s of %s saved\n", snap->id.c_str(), o.device.c_str());
    std::printf("  %s in %llu chunks: %llu new (%s, stored as %s), %llu holes, %llu resumed\n",
                HumanBytes(snap->size).c_str(), static_cast<unsigned long long>(s.chunks),
                static_cast<unsigned long long>(s.new_chunks), HumanBytes(s.new_bytes).c_str(),
                HumanBytes(s.stored_bytes).c_str(), static_cast<unsigned long long>(s.holes),
                static_cast<unsigned long long>(s.resumed_chunks));
    std::printf("  %.1f s, %.1f MB/s\n", s.seconds,
                s.seconds > 0 ? static_cast<double>(snap->size) / s.seconds / 1e6 : 0.0);
  }
  return kExitOk;
}

int RunSnapshots(const GlobalOptions& g) {
  int rc = kExitOk;
  auto repo = OpenTarget(g, &rc);
  if (!repo.ok()) return rc;
  auto list = (*repo)->catalog().ListSnapshots();
  if (!list.ok()) return Fail(list.status(), Stage::kWork);
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const Snapshot& s : *list) arr.push_back(SnapshotJson(s));
    std::cout << arr.dump() << "\n";
    return kExitOk;
  }
  std::printf("%-16s  %-20s  %-10s  %-20s  %s\n", "ID", "TIME", "SIZE", "DEVICE", "LABEL");
  for (const Snapshot& s : *list) {
    std::printf("%-16s  %-20s  %-10s  %-20s  %s\n", s.id.c_str(), IsoTime(s.time).c_str(),
                HumanBytes(s.size).c_str(), s.device.path.c_str(), s.label.c_str());
  }
  return kExitOk;
}

int RunLock(const GlobalOptions& g) {
  Result<int> removed = ForgetKernelCachedKeys();
  if (!removed.ok()) return Fail(removed.status(), Stage::kWork);
  if (g.json) {
    std::cout << nlohmann::json{{"keys_forgotten", *removed}}.dump() << "\n";
  } else if (!g.quiet) {
    std::printf("forgot %d unlocked key%s\n", *removed, *removed == 1 ? "" : "s");
  }
  return kExitOk;
}

int RunRestore(const GlobalOptions& g, const RestoreCommandOptions& o) {
  int rc = kExitOk;
  auto repo = OpenTarget(g, &rc);
  if (!repo.ok()) return rc;
  auto snap = (*repo)->catalog().FindSnapshot(o.snapshot);
  if (!snap.ok()) return Fail(snap.status(), Stage::kWork);
  const Codec& codec = (*repo)->codec();
  auto manifest = LoadManifest(snap->manifest_root, codec, (*repo)->source());
  if (!manifest.ok()) {
    return Fail(manifest.status().WithContext("snapshot " + snap->id), Stage::kWork);
  }
  if (Status st = (*repo)->Prepare(manifest->chunks); !st.ok()) return Fail(st, Stage::kWork);
  auto target = OpenRestoreTarget(o.target, manifest->size,
                                  {.zero_holes = o.zero_holes, .direct_io = !o.buffered});
  if (!target.ok()) return Fail(target.status(), Stage::kWork);

  ProgressBar bar("restore", ShowProgress(g));
  RestoreOptions options{.progress = bar.Callback(), .cancel = g.interrupted};
  auto stats = Restore(*manifest, codec, (*repo)->source(), **target, options);
  PrintWarnings(g, **repo);
  if (!stats.ok()) {
    return Fail(stats.status().WithContext("restore of snapshot " + snap->id + " to " + o.target),
                Stage::kWork);
  }
  if (g.json) {
    std::cout << nlohmann::json{{"snapshot", snap->id},
                                {"target", o.target},
                                {"bytes_written", stats->bytes_written},
                                {"chunks_written", stats->chunks_written},
                                {"holes", stats->holes}}
                     .dump()
              << "\n";
  } else if (!g.quiet) {
    std::printf("restored snapshot %s (%s) to %s: %llu chunks written, %llu holes\n",
                snap->id.c_str(), HumanBytes(manifest->size).c_str(), o.target.c_str(),
                static_cast<unsigned long long>(stats->chunks_written),
                static_cast<unsigned long long>(stats->holes));
  }
  return kExitOk;
}

int RunVerify(const GlobalOptions& g, const std::optional<std::string>& which) {
  int rc = kExitOk;
  auto repo = OpenTarget(g, &rc);
  if (!repo.ok()) return rc;
  std::vector<Snapshot> snaps;
  if (which) {
    auto one = (*repo)->catalog().FindSnapshot(*which);
    if (!one.ok()) return Fail(one.status(), Stage::kWork);
    snaps.push_back(*one);
  } else {
    auto all = (*repo)->catalog().ListSnapshots();
    if (!all.ok()) return Fail(all.status(), Stage::kWork);
    snaps = std::move(*all);
  }
  const Codec& codec = (*repo)->codec();
  VerifyCache cache;  // chunks shared by several snapshots are read once
  nlohmann::json out = nlohmann::json::array();
  uint64_t bad_total = 0;
  for (const Snapshot& s : snaps) {
    nlohmann::json entry = {{"snapshot", s.id}};
    auto manifest = LoadManifest(s.manifest_root, codec, (*repo)->source());
    if (!manifest.ok()) {
      ++bad_total;
      std::fprintf(stderr, "sparetime: snapshot %s: manifest is damaged: %s\n", s.id.c_str(),
                   manifest.status().message().c_str());
      entry["errors"] = {{{"offset", nullptr}, {"error", manifest.status().message()}}};
      out.push_back(entry);
      continue;
    }
    if (Status st = (*repo)->Prepare(manifest->chunks); !st.ok()) return Fail(st, Stage::kWork);
    ProgressBar bar("verify " + s.id, ShowProgress(g));
    RestoreOptions options{.progress = bar.Callback(), .cancel = g.interrupted};
    auto report = Verify(*manifest, codec, (*repo)->source(), options, &cache);
    if (!report.ok()) return Fail(report.status(), Stage::kWork);
    entry["chunks_checked"] = report->chunks_checked;
    entry["chunks_checked_before"] = report->chunks_known;
    entry["errors"] = nlohmann::json::array();
    for (const BadChunk& b : report->bad) {
      ++bad_total;
      std::fprintf(stderr, "sparetime: snapshot %s: %s\n", s.id.c_str(),
                   b.error.message().c_str());
      entry["errors"].push_back({{"offset", b.offset}, {"id", b.id.hex()},
                                 {"error", b.error.message()}});
    }
    if (!g.json && !g.quiet) {
      std::printf("snapshot %s: %llu chunks checked (%llu shared with snapshots above), %s\n",
                  s.id.c_str(),
                  static_cast<unsigned long long>(report->chunks_checked + report->chunks_known),
                  static_cast<unsigned long long>(report->chunks_known),
                  report->ok() ? "all good" : "DAMAGED");
    }
    out.push_back(entry);
  }
  if (g.json) std::cout << out.dump() << "\n";
  PrintWarnings(g, **repo);
  if (bad_total > 0) {
    std::fprintf(stderr, "sparetime: %llu damaged chunk(s) found; the snapshots named above "
                         "cannot be fully restored from this repository\n",
                 static_cast<unsigned long long>(bad_total));
    return kExitCorruption;
  }
  return kExitOk;
}

int RunForget(const GlobalOptions& g, const std::string& which) {
  int rc = kExitOk;
  auto repo = OpenTarget(g, &rc);
  if (!repo.ok()) return rc;
  auto snap = (*repo)->catalog().FindSnapshot(which);
  if (!snap.ok()) return Fail(snap.status(), Stage::kWork);
  Status st = (*repo)->catalog().ForgetSnapshot(snap->id);
  if (st.ok()) st = (*repo)->Commit();
  if (!st.ok()) return Fail(st, Stage::kWork);
  if (g.json) {
    std::cout << nlohmann::json{{"forgotten", snap->id}}.dump() << "\n";
  } else if (!g.quiet) {
    std::printf("forgot snapshot %s (its chunks stay in the store until a prune)\n",
                snap->id.c_str());
  }
  return kExitOk;
}

int RunRepair(const GlobalOptions& g) {
  int rc = kExitOk;
  auto repo = OpenTarget(g, &rc);
  if (!repo.ok()) return rc;
  Result<std::string> report = (*repo)->Repair();
  PrintWarnings(g, **repo);
  if (!report.ok()) return Fail(report.status(), Stage::kWork);
  if (g.json) {
    std::cout << nlohmann::json{{"repair", *report}}.dump() << "\n";
  } else if (!g.quiet) {
    std::printf("repair: %s\n", report->c_str());
  }
  return kExitOk;
}

}  // namespace sparetime::cli
