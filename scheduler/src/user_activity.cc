// UserActivitySensor: utmp + tty atimes (as `w`), input node times, the
// input watcher and logind, merged into "newest input, and where".
#include "sparetime/scheduler/user_activity.h"

#include "user_terminals.h"

namespace sparetime::scheduler {
namespace {

void Consider(UserActivitySample* s, std::chrono::system_clock::time_point t, std::string source) {
  if (!s->last_input || t > *s->last_input) {
    s->last_input = t;
    s->source = std::move(source);
  }
}

}  // namespace

std::string UserActivitySample::Describe(std::chrono::system_clock::time_point now) const {
  if (!last_input) return "no user sessions or input devices";
  auto ago = std::chrono::duration_cast<std::chrono::seconds>(now - *last_input);
  std::string when = ago.count() <= 0 ? "just now" : std::to_string(ago.count()) + " s ago";
  return "last input on " + source + " " + when;
}

Status UserActivitySensor::ReadTerminals(UserActivitySample* sample) const {
  ST_ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> lines,
                      UserTerminals(reader_, options_.utmp_path));
  if (!lines) return Status::Ok();
  for (const std::string& line : *lines) {
    ++sample->sessions;
    Result<FileTimes> times = reader_.Stat("/dev/" + line);
    if (!times.ok()) continue;  // stale entry: the terminal is gone
    Consider(sample, times->atime, line);
  }
  return Status::Ok();
}

Status UserActivitySensor::ReadInputDevices(UserActivitySample* sample) const {
  if (!reader_.Exists("/dev/input")) return Status::Ok();
  ST_ASSIGN_OR_RETURN(std::vector<std::string> names, reader_.ListDir("/dev/input"));
  for (const std::string& name : names) {
    if (name.rfind("event", 0) != 0) continue;
    Result<FileTimes> times = reader_.Stat("/dev/input/" + name);
    if (!times.ok()) continue;  // unplugged between listing and stat
    ++sample->input_devices;
    Consider(sample, std::max(times->atime, times->mtime), "input/" + name);
  }
  return Status::Ok();
}

Result<UserActivitySample> UserActivitySensor::Read() {
  UserActivitySample sample;
  ST_RETURN_IF_ERROR(ReadTerminals(&sample));
  ST_RETURN_IF_ERROR(ReadInputDevices(&sample));
  if (options_.input_watcher != nullptr) {
    if (auto a = options_.input_watcher->LastActivity()) Consider(&sample, a->when, a->where);
  }
  if (options_.logind != nullptr) {
    ST_ASSIGN_OR_RETURN(std::optional<IdleHint> hint, options_.logind->Read());
    if (hint) {
      sample.logind = true;
      // Idle since the epoch is logind's "no session ever": nothing to add.
      bool never = hint->idle && hint->since.time_since_epoch().count() == 0;
      if (!never) Consider(&sample, hint->idle ? hint->since : clock_.WallNow(), "logind");
    }
  }
  return sample;
}

}  // namespace sparetime::scheduler
