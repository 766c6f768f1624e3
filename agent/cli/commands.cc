// Subcommand implementations: open the backups (open_backups.h), call the
// use case in agent/ops, print a human summary or JSON.
#include "commands.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "exit_codes.h"
#include "format.h"
#include "agent_context.h"
#include "open_backups.h"
#include "progress_bar.h"
#include "sparetime/imaging/key_cache.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/policy.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/directory_policy.h"
#include "sparetime/ops/maintenance.h"
#include "sparetime/ops/snapshots.h"

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
          {"stats", s.stats.ToJson()},
          {"consistency", s.consistency},
          {"consistent", !s.inconsistent()}};
}

bool ShowProgress(const GlobalOptions& g) { return !g.json && !g.quiet; }

}  // namespace

int RunInit(const GlobalOptions& g, const InitOptions& o) {
  KdfLimits limits = o.kdf == "min"           ? KdfLimits::FastForTests()
                     : o.kdf == "interactive" ? KdfLimits::Interactive()
                                              : KdfLimits::Moderate();
  int rc = kExitOk;
  // "auto" is resolved here, so what is printed is what init records.
  const IdHash id_hash = ParseIdHash(o.id_hash).value_or(AutoIdHash());
  if (!InitBackups(g, {.chunk_size = o.chunk_size, .zstd_level = o.compression, .id_hash = id_hash},
                   limits, &rc)
           .ok()) {
    return rc;
  }
  const std::string where = g.repo.empty() ? "this agent's peers" : g.repo;
  const std::string ids(IdHashName(id_hash));
  if (g.json) {
    std::cout << nlohmann::json{{"repository", where}, {"id_hash", ids}}.dump() << "\n";
  } else if (!g.quiet) {
    std::cout << "created sparetime repository at " << where << "\n"
              << "chunk ids: " << ids
              << (o.id_hash == "auto" ? (CpuHasShaExtensions() ? " (auto: this CPU has SHA extensions)"
                                                               : " (auto: this CPU has no SHA extensions)")
                                      : "")
              << "\n"
              << "keep the passphrase safe: without it the backups cannot be read\n";
  }
  return kExitOk;
}

int RunBackup(const GlobalOptions& g, const BackupCommandOptions& o) {
  Result<uint64_t> rate = ByteLimit(o.idle);
  if (!rate.ok()) return Fail(rate.status(), Stage::kWork);
  int rc = kExitOk;
  ops::ConsistencyOptions consistency;
  if (g.repo.empty() && UsesAgentConfig(g) &&
      (!o.consistency || !o.max_freeze_seconds || !o.snapshot_size)) {
    Result<AgentContext> ctx = LoadAgentContext(g, &rc);
    if (!ctx.ok()) return rc;
    consistency =
        ops::ConsistencyFromPolicy(directory::ResolvePolicy(ctx->state.view, ctx->config.name));
  }
  if (o.consistency) {
    Result<ops::ConsistencyMode> mode = ops::ParseConsistencyMode(*o.consistency);
    if (!mode.ok()) return Fail(mode.status(), Stage::kWork);
    consistency.mode = *mode;
  }
  if (o.max_freeze_seconds) consistency.max_freeze_seconds = *o.max_freeze_seconds;
  if (o.snapshot_size) {
    Result<uint64_t> size = config::ParseSize(*o.snapshot_size);
    if (!size.ok()) {
      return Fail(InvalidArgument("--snapshot-size " + *o.snapshot_size + ": " +
                                  size.status().message()),
                  Stage::kWork);
    }
    consistency.snapshot_bytes = *size;
  }
  auto repo = OpenBackups(g, &rc);
  if (!repo.ok()) return rc;
  ProgressBar bar("backup", ShowProgress(g));
  ops::BackupRequest request;
  request.consistency = consistency;
  request.device = o.device;
  request.label = o.label;
  request.buffered = o.buffered;
  request.checkpoint_bytes = std::max<uint64_t>(1, o.checkpoint_mib) << 20;
  request.bytes_per_second = *rate;
  request.progress = bar.Callback();
  request.cancel = g.interrupted;
  request.all_blocks = o.all_blocks;
  if (!g.quiet) request.notice = [](const std::string& n) { std::cerr << "notice: " << n << "\n"; };
  ops::IdleRunReport idle;
  Result<Snapshot> snap = o.idle.when_idle
                              ? BackupWhenIdle(g, o.idle, **repo, std::move(request), &idle)
                              : ops::Backup(**repo, request);
  PrintWarnings(g, (*repo)->Warnings());
  if (!snap.ok()) return Fail(snap.status(), Stage::kWork);

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
  auto repo = OpenBackups(g, &rc);
  if (!repo.ok()) return rc;
  auto list = ops::ListSnapshots(**repo);
  if (!list.ok()) return Fail(list.status(), Stage::kWork);
  // Whole-disk snapshots list their partitions, read from the image's own
  // table (nothing for images without one; a broken table says so).
  auto partitions = [&](const Snapshot& s) {
    Result<PartitionTable> t = ops::SnapshotPartitions(**repo, s);
    nlohmann::json j = nlohmann::json::object();
    if (!t.ok()) {
      j["partition_table_error"] = t.status().message();
    } else if (t->scheme != PartitionTable::Scheme::kNone) {
      j["partition_table"] = SchemeName(t->scheme);
      j["partitions"] = nlohmann::json::array();
      for (const Partition& p : t->partitions) {
        j["partitions"].push_back({{"number", p.number}, {"offset", p.offset}, {"size", p.size},
                                   {"type", p.type}, {"uuid", p.uuid}, {"name", p.name}});
      }
    }
    return j;
  };
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const Snapshot& s : *list) {
      nlohmann::json j = SnapshotJson(s);
      j.update(partitions(s));
      arr.push_back(std::move(j));
    }
    std::cout << arr.dump() << "\n";
    return kExitOk;
  }
  std::printf("%-16s  %-20s  %-10s  %-20s  %-12s  %s\n", "ID", "TIME", "SIZE", "DEVICE",
              "CONSISTENCY", "LABEL");
  for (const Snapshot& s : *list) {
    const std::string how = s.inconsistent()       ? "INCONSISTENT"
                            : s.consistency.empty() ? "-"
                                                    : s.consistency;
    std::printf("%-16s  %-20s  %-10s  %-20s  %-12s  %s\n", s.id.c_str(), IsoTime(s.time).c_str(),
                HumanBytes(s.size).c_str(), s.device.path.c_str(), how.c_str(), s.label.c_str());
    nlohmann::json j = partitions(s);
    if (j.contains("partition_table_error")) {
      std::printf("  partition table unreadable: %s\n",
                  j["partition_table_error"].get<std::string>().c_str());
    }
    for (const nlohmann::json& p : j.value("partitions", nlohmann::json::array())) {
      std::printf("  partition %-3u %-10s at %-12llu %s %s\n", p["number"].get<unsigned>(),
                  HumanBytes(p["size"].get<uint64_t>()).c_str(),
                  static_cast<unsigned long long>(p["offset"].get<uint64_t>()),
                  p["type"].get<std::string>().c_str(), p["name"].get<std::string>().c_str());
    }
  }
  std::printf("chunk ids: %s\n", std::string(IdHashName((*repo)->config().id_hash)).c_str());
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
  auto repo = OpenBackups(g, &rc);
  if (!repo.ok()) return rc;
  ProgressBar bar("restore", ShowProgress(g));
  ops::RestoreRequest request;
  request.snapshot = o.snapshot;
  request.device = o.device;
  request.target = o.target;
  request.zero_holes = o.zero_holes;
  request.buffered = o.buffered;
  request.truncate = o.truncate;
  request.keep_going = o.keep_going;
  request.partition = o.partition;
  request.progress = bar.Callback();
  request.cancel = g.interrupted;
  Result<ops::RestoreReport> r = ops::RestoreSnapshot(**repo, request);
  PrintWarnings(g, (*repo)->Warnings());
  if (!r.ok()) return Fail(r.status(), Stage::kWork);
  const std::vector<DamagedRange>& damaged = r->stats.damaged;
  if (g.json) {
    nlohmann::json bad = nlohmann::json::array();
    for (const DamagedRange& d : damaged) {
      bad.push_back({{"offset", d.offset}, {"length", d.length}, {"id", d.id.hex()},
                     {"error", d.error.message()}});
    }
    std::cout << nlohmann::json{{"snapshot", r->snapshot.id},
                                {"target", o.target},
                                {"image_size", r->image_size},
                                {"target_size", r->target_size},
                                {"bytes_written", r->stats.bytes_written},
                                {"chunks_written", r->stats.chunks_written},
                                {"holes", r->stats.holes},
                                {"partition", r->partition ? r->partition->number : 0},
                                {"gpt_moved", r->gpt_moved},
                                {"damaged", bad}}
                     .dump()
              << "\n";
  } else if (!g.quiet) {
    std::printf("restored snapshot %s (%s) to %s: %llu chunks written, %llu holes\n",
                r->snapshot.id.c_str(), HumanBytes(r->image_size).c_str(), o.target.c_str(),
                static_cast<unsigned long long>(r->stats.chunks_written),
                static_cast<unsigned long long>(r->stats.holes));
    if (r->partition) {
      std::printf("  partition %u: %s at offset %llu of the disk image\n", r->partition->number,
                  HumanBytes(r->partition->size).c_str(),
                  static_cast<unsigned long long>(r->partition->offset));
    }
    if (r->gpt_moved) {
      std::printf("the backup GPT moved to the end of %s (%s); the partitions are unchanged\n",
                  o.target.c_str(), HumanBytes(r->target_size).c_str());
    } else if (r->target_size > r->image_size) {
      std::printf("%s keeps its size (%s); the %s past the image are unchanged\n",
                  o.target.c_str(), HumanBytes(r->target_size).c_str(),
                  HumanBytes(r->target_size - r->image_size).c_str());
    }
  }
  if (damaged.empty()) return kExitOk;
  for (const DamagedRange& d : damaged) {
    std::fprintf(stderr, "sparetime: damaged: offset %llu, %llu bytes left as zeroes: %s\n",
                 static_cast<unsigned long long>(d.offset),
                 static_cast<unsigned long long>(d.length), d.error.message().c_str());
  }
  return Fail(Corruption(std::to_string(damaged.size()) + " damaged chunk(s) of snapshot " +
                         r->snapshot.id + " were written as zeroes (offsets listed above); "
                         "every other chunk is restored. `sparetime repair --source DEVICE` or "
                         "a new backup of the device stores them again while it holds them"),
              Stage::kWork);
}

namespace {

nlohmann::json VerdictJson(const ops::SnapshotVerdict& v) {
  nlohmann::json entry = {{"snapshot", v.snapshot.id}};
  if (v.manifest_error) {
    entry["errors"] = {{{"offset", nullptr}, {"error", *v.manifest_error}}};
    return entry;
  }
  entry["chunks_checked"] = v.chunks_checked;
  entry["chunks_checked_before"] = v.chunks_known;
  entry["errors"] = nlohmann::json::array();
  for (const BadChunk& b : v.bad) {
    entry["errors"].push_back(
        {{"offset", b.offset}, {"id", b.id.hex()}, {"error", b.error.message()}});
  }
  return entry;
}

void PrintVerdict(const ops::SnapshotVerdict& v, bool summary) {
  if (v.manifest_error) {
    std::fprintf(stderr, "sparetime: snapshot %s: manifest is damaged: %s\n",
                 v.snapshot.id.c_str(), v.manifest_error->c_str());
    return;
  }
  for (const BadChunk& b : v.bad) {
    std::fprintf(stderr, "sparetime: snapshot %s: %s\n", v.snapshot.id.c_str(),
                 b.error.message().c_str());
  }
  if (!summary) return;
  std::printf("snapshot %s: %llu chunks checked (%llu shared with snapshots above), %s\n",
              v.snapshot.id.c_str(),
              static_cast<unsigned long long>(v.chunks_checked + v.chunks_known),
              static_cast<unsigned long long>(v.chunks_known), v.ok() ? "all good" : "DAMAGED");
}

}  // namespace

int RunVerify(const GlobalOptions& g, const std::optional<std::string>& which, bool full) {
  int rc = kExitOk;
  auto repo = OpenBackups(g, &rc);
  if (!repo.ok()) return rc;
  std::unique_ptr<ProgressBar> bar;
  size_t bar_of = SIZE_MAX;
  ops::VerifyRequest request;
  request.snapshot = which;
  request.cancel = g.interrupted;
  request.full = full;
  if (ShowProgress(g)) {
    request.progress = [&](size_t i, size_t, const Snapshot& s, const ProgressInfo& p) {
      if (i != bar_of) {
        bar.reset();
        bar = std::make_unique<ProgressBar>("verify " + s.id, true);
        bar_of = i;
      }
      if (ProgressFn draw = bar->Callback()) draw(p);
    };
  }
  Result<ops::VerifyBackupsReport> report = ops::VerifyBackups(**repo, request);
  bar.reset();
  if (!report.ok()) {
    PrintWarnings(g, (*repo)->Warnings());
    return Fail(report.status(), Stage::kWork);
  }
  nlohmann::json out = nlohmann::json::array();
  if (report->database_error) {
    std::fprintf(stderr, "sparetime: %s\n", report->database_error->c_str());
    out.push_back({{"database", nullptr}, {"errors", {{{"error", *report->database_error}}}}});
  }
  for (const ops::SnapshotVerdict& v : report->snapshots) {
    PrintVerdict(v, !g.json && !g.quiet);
    out.push_back(VerdictJson(v));
  }
  if (g.json) std::cout << out.dump() << "\n";
  // Each damaged chunk once, with every snapshot that uses it.
  for (const ops::DamagedChunkUse& c : report->chunks) {
    std::string used;
    for (const auto& [id, offset] : c.snapshots) {
      used += (used.empty() ? "" : ", ") + id + " (offset " + std::to_string(offset) + ")";
    }
    std::fprintf(stderr, "sparetime: damaged chunk %s, used by %zu snapshot(s): %s: %s\n",
                 c.id.short_hex().c_str(), c.snapshots.size(), used.c_str(),
                 c.error.message().c_str());
  }
  for (const ops::DamagedReplica& r : report->replicas) {
    std::fprintf(stderr, "sparetime: %s replica of chunk %s on %s (record dropped): %s\n",
                 r.damaged ? "damaged" : "missing", r.id.short_hex().c_str(), r.peer.c_str(),
                 r.error.c_str());
  }
  PrintWarnings(g, (*repo)->Warnings());
  if (Status verdict = ops::VerifyVerdict(*report); !verdict.ok()) {
    return Fail(verdict, Stage::kWork);
  }
  return kExitOk;
}

int RunForget(const GlobalOptions& g, const std::string& which) {
  int rc = kExitOk;
  auto repo = OpenBackups(g, &rc);
  if (!repo.ok()) return rc;
  Result<Snapshot> snap = ops::ForgetSnapshot(**repo, which);
  if (!snap.ok()) return Fail(snap.status(), Stage::kWork);
  if (g.json) {
    std::cout << nlohmann::json{{"forgotten", snap->id}}.dump() << "\n";
  } else if (!g.quiet) {
    std::printf("forgot snapshot %s (its chunks stay in the store until a prune)\n",
                snap->id.c_str());
  }
  return kExitOk;
}

int RunRepair(const GlobalOptions& g, const std::string& source) {
  int rc = kExitOk;
  auto repo = OpenBackups(g, &rc);
  if (!repo.ok()) return rc;
  Result<ops::RepairReport> report =
      ops::Repair(**repo, {.source = source, .cancel = g.interrupted});
  PrintWarnings(g, (*repo)->Warnings());
  if (!report.ok()) return Fail(report.status(), Stage::kWork);
  if (g.json) {
    nlohmann::json out{{"repair", ops::RepairText(*report)},
                       {"chunks", report->chunks},
                       {"copied", report->copied},
                       {"dropped", report->dropped},
                       {"learned", report->learned},
                       {"lost", report->lost}};
    if (report->local) {
      out["lost_at"] = nlohmann::json::array();
      for (const ops::LostRange& l : report->lost_at) {
        out["lost_at"].push_back(
            {{"snapshot", l.snapshot}, {"offset", l.offset}, {"length", l.length}});
      }
    }
    std::cout << out.dump() << "\n";
  } else if (!g.quiet) {
    std::printf("repair: %s\n", ops::RepairText(*report).c_str());
  }
  for (const ops::LostRange& l : report->lost_at) {
    std::fprintf(stderr, "sparetime: lost: snapshot %s, offset %llu, %llu bytes\n",
                 l.snapshot.c_str(), static_cast<unsigned long long>(l.offset),
                 static_cast<unsigned long long>(l.length));
  }
  if (Status verdict = ops::RepairVerdict(*report); !verdict.ok()) {
    return Fail(verdict, Stage::kWork);
  }
  return kExitOk;
}

}  // namespace sparetime::cli
