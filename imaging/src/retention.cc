// Retention: restic-style keep rules over the catalog's snapshots (see
// retention.h).
//
// Invariants: decisions come back newest first, one per input snapshot; a
// bucket rule keeps a snapshot only when its bucket (day, ISO week, month)
// differs from the last bucket that rule kept, so with snapshots walked
// newest first it keeps the newest of each bucket; every device keeps its
// newest snapshot; a snapshot whose device is legacy_ambiguous is always
// kept and never counted in any device's rules.
#include "sparetime/imaging/retention.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>

namespace sparetime {
namespace {

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

constexpr int64_t kSecondsPerDay = 86400;

constexpr char kAmbiguousReason[] =
    "ambiguous device: its old key (catalog schema 1) is shared with snapshots that may be of "
    "other devices, so prune keeps it; `sparetime forget` it by id once you know it is unneeded";

// The local calendar day of a Unix time.
sys_days LocalDay(int64_t unix_seconds, int64_t offset) {
  int64_t local = unix_seconds + offset;
  int64_t day = local / kSecondsPerDay;
  if (local % kSecondsPerDay < 0) --day;  // floor for times before 1970
  return sys_days(days(day));
}

std::string Daily(sys_days d) {
  year_month_day ymd(d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

// ISO 8601 week: the week (Monday first) belongs to the year of its Thursday.
std::string Weekly(sys_days d) {
  const unsigned iso_weekday = std::chrono::weekday(d).iso_encoding();  // 1 Mon .. 7 Sun
  const sys_days thursday = d + days(4 - static_cast<int>(iso_weekday));
  const std::chrono::year y = year_month_day(thursday).year();
  const int64_t week = (thursday - sys_days(y / std::chrono::January / 1)).count() / 7 + 1;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-W%02lld", static_cast<int>(y), static_cast<long long>(week));
  return buf;
}

std::string Monthly(sys_days d) {
  year_month_day ymd(d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()));
  return buf;
}

// One bucket rule: its name, how many buckets it keeps, and the bucket of a day.
struct BucketRule {
  const char* name;
  uint32_t count;
  std::string (*bucket)(sys_days);
};

// Decides the snapshots of one device, `group` newest first.
void DecideDevice(std::vector<RetentionDecision*>& group, const RetentionPolicy& policy,
                  const UtcOffsetFn& offset) {
  std::array<BucketRule, 3> rules{{{"daily", policy.keep_daily, Daily},
                                   {"weekly", policy.keep_weekly, Weekly},
                                   {"monthly", policy.keep_monthly, Monthly}}};
  std::array<std::optional<std::string>, 3> last_kept;
  std::array<uint32_t, 3> left{rules[0].count, rules[1].count, rules[2].count};
  uint32_t last_left = policy.keep_last;
  for (RetentionDecision* d : group) {
    if (last_left > 0) {
      --last_left;
      d->reasons.push_back("last " + std::to_string(policy.keep_last));
    }
    const sys_days day = LocalDay(d->snapshot.time, offset(d->snapshot.time));
    for (size_t r = 0; r < rules.size(); ++r) {
      if (left[r] == 0) continue;
      std::string bucket = rules[r].bucket(day);
      if (last_kept[r] == bucket) continue;
      --left[r];
      d->reasons.push_back(std::string(rules[r].name) + " " + bucket);
      last_kept[r] = std::move(bucket);
    }
    d->keep = !d->reasons.empty();
  }
  if (!group.empty() && !group.front()->keep) {
    group.front()->keep = true;
    group.front()->reasons.push_back("newest of its device (every keep count is 0)");
  }
}

}  // namespace

std::string RetentionPolicy::ToString() const {
  return "last " + std::to_string(keep_last) + ", daily " + std::to_string(keep_daily) +
         ", weekly " + std::to_string(keep_weekly) + ", monthly " + std::to_string(keep_monthly);
}

int64_t SystemUtcOffset(int64_t unix_seconds) {
  const time_t t = static_cast<time_t>(unix_seconds);
  struct tm local {};
  if (::localtime_r(&t, &local) == nullptr) return 0;
  return local.tm_gmtoff;
}

std::vector<RetentionDecision> ApplyRetention(std::span<const Snapshot> snapshots,
                                              const RetentionPolicy& policy,
                                              const UtcOffsetFn& utc_offset) {
  const UtcOffsetFn offset = utc_offset ? utc_offset : UtcOffsetFn(SystemUtcOffset);
  std::vector<RetentionDecision> out;
  out.reserve(snapshots.size());
  for (const Snapshot& s : snapshots) out.push_back({s, false, {}});
  std::stable_sort(out.begin(), out.end(), [](const RetentionDecision& a, const RetentionDecision& b) {
    return a.snapshot.time > b.snapshot.time;
  });
  std::map<std::string, std::vector<RetentionDecision*>> by_device;
  for (RetentionDecision& d : out) {
    if (d.snapshot.device.legacy_ambiguous) {
      d.keep = true;
      d.reasons.push_back(kAmbiguousReason);
      continue;
    }
    by_device[d.snapshot.device.Key()].push_back(&d);
  }
  for (auto& [key, group] : by_device) DecideDevice(group, policy, offset);
  return out;
}

}  // namespace sparetime
