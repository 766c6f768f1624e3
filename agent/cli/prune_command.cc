// `sparetime prune`: resolve the policy (flags, directory, built-in), run the
// target's Prune, print each snapshot's verdict with its reasons and what was
// freed (or would be, with --dry-run), as text or JSON.
#include "prune_command.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent_context.h"
#include "exit_codes.h"
#include "format.h"
#include "open_backups.h"
#include "sparetime/directory/policy.h"
#include "sparetime/ops/maintenance.h"

namespace sparetime::cli {
namespace {

struct ResolvedPolicy {
  RetentionPolicy policy;
  std::string source;  // "command line", "directory policy of HOST", "built-in default"
};

Result<ResolvedPolicy> Resolve(const GlobalOptions& g, const PruneCommandOptions& o,
                               int* exit_code) {
  if (o.keep_last || o.keep_daily || o.keep_weekly || o.keep_monthly) {
    return ResolvedPolicy{{o.keep_last.value_or(0), o.keep_daily.value_or(0),
                           o.keep_weekly.value_or(0), o.keep_monthly.value_or(0)},
                          "command line"};
  }
  if (!g.repo.empty() || !UsesAgentConfig(g)) {
    return ResolvedPolicy{ops::RetentionFromPolicy(directory::EffectivePolicy{}), "built-in default"};
  }
  ST_ASSIGN_OR_RETURN(AgentContext ctx, LoadAgentContext(g, exit_code));
  return ResolvedPolicy{ops::RetentionFromPolicy(directory::ResolvePolicy(ctx.state.view, ctx.config.name)),
                        "directory policy of " + ctx.config.name};
}

nlohmann::json ReportJson(const ResolvedPolicy& p, const PruneReport& r) {
  nlohmann::json snaps = nlohmann::json::array();
  for (const RetentionDecision& d : r.decisions) {
    snaps.push_back({{"id", d.snapshot.id},
                     {"time", IsoTime(d.snapshot.time)},
                     {"device", d.snapshot.device.path},
                     {"device_key", d.snapshot.device.Key()},
                     {"label", d.snapshot.label},
                     {"keep", d.keep},
                     {"reasons", d.reasons}});
  }
  return {{"dry_run", r.dry_run},
          {"policy",
           {{"keep_last", p.policy.keep_last},
            {"keep_daily", p.policy.keep_daily},
            {"keep_weekly", p.policy.keep_weekly},
            {"keep_monthly", p.policy.keep_monthly},
            {"source", p.source}}},
          {"snapshots", snaps},
          {"snapshots_forgotten", r.snapshots_forgotten},
          {"chunks_stored", r.chunks_stored},
          {"chunks_referenced", r.chunks_referenced},
          {"chunks_in_journals", r.chunks_in_journals},
          {"chunks_removed", r.chunks_removed},
          {"bytes_removed", r.bytes_removed},
          {"notes", r.notes}};
}

void PrintReport(const ResolvedPolicy& p, const PruneReport& r) {
  std::printf("policy: %s (%s)%s\n", p.policy.ToString().c_str(), p.source.c_str(),
              r.dry_run ? "; dry run: nothing is changed" : "");
  for (const RetentionDecision& d : r.decisions) {
    std::string reasons;
    for (const std::string& why : d.reasons) reasons += (reasons.empty() ? "" : ", ") + why;
    std::printf("%-6s  %s  %s  %-20s  %s\n", d.keep ? "keep" : "forget", d.snapshot.id.c_str(),
                IsoTime(d.snapshot.time).c_str(), d.snapshot.device.path.c_str(),
                reasons.c_str());
  }
  const char* verb = r.dry_run ? "would be" : "were";
  std::printf("%zu snapshot(s) kept, %llu %s forgotten\n",
              r.decisions.size() - static_cast<size_t>(r.snapshots_forgotten),
              static_cast<unsigned long long>(r.snapshots_forgotten), verb);
  std::printf("%llu of %llu stored chunks %s removed (%s); %llu referenced by kept snapshots, "
              "%llu more by interrupted backups\n",
              static_cast<unsigned long long>(r.chunks_removed),
              static_cast<unsigned long long>(r.chunks_stored), verb,
              HumanBytes(r.bytes_removed).c_str(),
              static_cast<unsigned long long>(r.chunks_referenced),
              static_cast<unsigned long long>(r.chunks_in_journals));
  for (const std::string& note : r.notes) std::printf("%s\n", note.c_str());
}

}  // namespace

void AddPruneOptions(CLI::App* cmd, PruneCommandOptions* o) {
  cmd->add_option("--keep-last", o->keep_last, "keep the N newest snapshots of each device");
  cmd->add_option("--keep-daily", o->keep_daily,
                  "keep the newest snapshot of each of the N newest days with one");
  cmd->add_option("--keep-weekly", o->keep_weekly,
                  "keep the newest snapshot of each of the N newest ISO weeks with one");
  cmd->add_option("--keep-monthly", o->keep_monthly,
                  "keep the newest snapshot of each of the N newest months with one");
  cmd->add_flag("--dry-run", o->dry_run, "show what would be forgotten and freed; change nothing");
}

int RunPrune(const GlobalOptions& g, const PruneCommandOptions& o) {
  int rc = kExitOk;
  Result<ResolvedPolicy> policy = Resolve(g, o, &rc);
  if (!policy.ok()) return rc;
  auto repo = OpenBackups(g, &rc);
  if (!repo.ok()) return rc;
  PruneOptions options;
  options.dry_run = o.dry_run;
  options.cancel = g.interrupted;
  Result<PruneReport> report = ops::Prune(**repo, policy->policy, options);
  PrintWarnings(g, (*repo)->Warnings());
  if (!report.ok()) return Fail(report.status().WithContext("prune"), Stage::kWork);
  if (g.json) {
    std::cout << ReportJson(*policy, *report).dump() << "\n";
  } else if (!g.quiet) {
    PrintReport(*policy, *report);
  }
  if (!report->stopped.ok()) return Fail(report->stopped, Stage::kWork);
  return kExitOk;
}

}  // namespace sparetime::cli
