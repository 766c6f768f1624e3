// PressureSensor: parses PSI files ("some avg10=.. avg60=.. avg300=.. total=..")
// and subtracts the agent's own cgroup when it has one.
#include "sparetime/scheduler/pressure_sensor.h"

#include <algorithm>

#include "own_cgroup.h"
#include "text_util.h"

namespace sparetime::scheduler {
namespace {

constexpr const char* kResources[] = {"cpu", "io", "memory"};

// The value of `key=` among a PSI line's fields.
std::optional<double> Field(const std::vector<std::string_view>& fields, std::string_view key) {
  for (std::string_view f : fields) {
    if (f.size() > key.size() && f.substr(0, key.size()) == key && f[key.size()] == '=') {
      return ParseDouble(f.substr(key.size() + 1));
    }
  }
  return std::nullopt;
}

Result<Psi> ParsePsi(const std::string& path, std::string_view text) {
  Psi psi;
  bool have_some = false;
  std::vector<std::string_view> lines = SplitLines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<std::string_view> f = SplitFields(lines[i]);
    if (f.empty()) continue;
    std::optional<double> avg10 = Field(f, "avg10");
    std::optional<double> avg60 = Field(f, "avg60");
    if ((f[0] != "some" && f[0] != "full") || !avg10 || !avg60) {
      return UnexpectedContent(path, i + 1, "\"some|full avg10=N avg60=N avg300=N total=N\"",
                               lines[i]);
    }
    if (f[0] == "some") {
      psi.some_avg10 = *avg10;
      psi.some_avg60 = *avg60;
      have_some = true;
    } else {
      psi.full_avg10 = *avg10;
      psi.full_avg60 = *avg60;
    }
  }
  if (!have_some)
    return UnexpectedContent(path, 1, "a \"some\" line", lines.empty() ? "" : lines[0]);
  return psi;
}

Result<std::optional<Psi>> ReadPsi(const SystemReader& reader, const std::string& path) {
  ST_ASSIGN_OR_RETURN(std::optional<std::string> text, reader.ReadFileIfExists(path));
  if (!text) return std::optional<Psi>();
  ST_ASSIGN_OR_RETURN(Psi psi, ParsePsi(path, *text));
  return std::optional<Psi>(psi);
}

double Minus(double a, double b) { return std::max(0.0, a - b); }

std::optional<double> Minus(std::optional<double> a, std::optional<double> b) {
  if (!a) return a;
  return Minus(*a, b.value_or(0));
}

void Subtract(Psi* system, const Psi& own) {
  system->some_avg10 = Minus(system->some_avg10, own.some_avg10);
  system->some_avg60 = Minus(system->some_avg60, own.some_avg60);
  system->full_avg10 = Minus(system->full_avg10, own.full_avg10);
  system->full_avg60 = Minus(system->full_avg60, own.full_avg60);
}

std::string Some10(const std::optional<Psi>& p) {
  return p ? FormatPercent(p->some_avg10) : std::string("n/a");
}

}  // namespace

std::string PressureSample::Describe() const {
  return "pressure (some avg10): cpu " + Some10(cpu) + ", io " + Some10(io) + ", memory " +
         Some10(memory) + (own_cgroup_subtracted ? " (agent's cgroup excluded)" : "");
}

Result<std::optional<PressureSample>> PressureSensor::Read() const {
  PressureSample sample;
  std::optional<Psi>* slots[] = {&sample.cpu, &sample.io, &sample.memory};
  ST_ASSIGN_OR_RETURN(std::optional<std::string> cgroup, OwnCgroupDir(reader_));
  for (size_t i = 0; i < 3; ++i) {
    ST_ASSIGN_OR_RETURN(*slots[i],
                        ReadPsi(reader_, std::string("/proc/pressure/") + kResources[i]));
    if (!*slots[i] || !cgroup) continue;
    ST_ASSIGN_OR_RETURN(std::optional<Psi> own,
                        ReadPsi(reader_, *cgroup + "/" + kResources[i] + ".pressure"));
    if (!own) continue;
    Subtract(&**slots[i], *own);
    sample.own_cgroup_subtracted = true;
  }
  if (!sample.cpu && !sample.io && !sample.memory) return std::optional<PressureSample>();
  return std::optional<PressureSample>(std::move(sample));
}

}  // namespace sparetime::scheduler
