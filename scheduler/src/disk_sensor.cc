// DiskSensor: /proc/diskstats deltas per physical disk minus /proc/self/io.
// Invariant: previous_ holds only fully parsed readings; a counter that went
// backwards (device re-added) yields zero for that interval, never a huge rate.
#include "sparetime/scheduler/disk_sensor.h"

#include <algorithm>

#include "text_util.h"

namespace sparetime::scheduler {
namespace {

constexpr std::string_view kDiskStats = "/proc/diskstats";
constexpr std::string_view kSelfIo = "/proc/self/io";
constexpr double kSectorBytes = 512;  // diskstats sectors are always 512 bytes

// /sys/block uses '!' where the device name has '/' (cciss/c0d0).
bool IsPhysicalDisk(const SystemReader& reader, std::string name) {
  std::replace(name.begin(), name.end(), '/', '!');
  return reader.Exists("/sys/block/" + name + "/device");
}

// read_bytes + write_bytes from /proc/self/io ("key: value" lines).
Result<uint64_t> ParseSelfIo(std::string_view text) {
  std::optional<uint64_t> read, written;
  std::vector<std::string_view> lines = SplitLines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<std::string_view> f = SplitFields(lines[i]);
    if (f.size() != 2 || f[0].empty() || f[0].back() != ':') {
      return UnexpectedContent(kSelfIo, i + 1, "\"key: value\"", lines[i]);
    }
    if (f[0] == "read_bytes:") read = ParseU64(f[1]);
    if (f[0] == "write_bytes:") written = ParseU64(f[1]);
  }
  if (!read || !written) {
    return UnexpectedContent(kSelfIo, 1, "numeric read_bytes and write_bytes lines",
                             lines.empty() ? "" : lines[0]);
  }
  return *read + *written;
}

}  // namespace

const DiskRate* DiskSample::Busiest() const {
  const DiskRate* best = nullptr;
  for (const DiskRate& d : disks) {
    if (best == nullptr || d.busy_percent > best->busy_percent) best = &d;
  }
  return best;
}

std::string DiskSample::Describe() const {
  if (!has_rates) return "disk: measuring";
  const DiskRate* d = Busiest();
  if (d == nullptr) return "disk: no physical disks";
  return "disk " + d->name + " " + FormatPercent(d->busy_percent) + " busy, " +
         FormatRate(d->read_bytes_per_sec + d->write_bytes_per_sec) + " (agent " +
         FormatRate(own_bytes_per_sec) + ")";
}

Result<DiskSensor::Reading> DiskSensor::Take() const {
  Reading r;
  r.when = clock_.MonoNow();
  ST_ASSIGN_OR_RETURN(std::string text, reader_.ReadFile(kDiskStats));
  std::vector<std::string_view> lines = SplitLines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<std::string_view> f = SplitFields(lines[i]);
    if (f.empty()) continue;
    std::optional<uint64_t> sectors_read, sectors_written, io_ticks;
    if (f.size() >= 13) {
      sectors_read = ParseU64(f[5]);
      sectors_written = ParseU64(f[9]);
      io_ticks = ParseU64(f[12]);
    }
    if (!sectors_read || !sectors_written || !io_ticks) {
      return UnexpectedContent(kDiskStats, i + 1, "\"major minor name\" and at least 11 counters",
                               lines[i]);
    }
    std::string name(f[2]);
    if (!IsPhysicalDisk(reader_, name)) continue;
    r.disks[name] = Counters{*sectors_read, *sectors_written, *io_ticks};
  }
  ST_ASSIGN_OR_RETURN(std::optional<std::string> self_io, reader_.ReadFileIfExists(kSelfIo));
  if (self_io) {
    ST_ASSIGN_OR_RETURN(r.own_bytes, ParseSelfIo(*self_io));
  }
  return r;
}

Result<std::optional<DiskSample>> DiskSensor::Read() {
  if (!reader_.Exists(kDiskStats)) return std::optional<DiskSample>();
  ST_ASSIGN_OR_RETURN(Reading now, Take());
  DiskSample sample;
  double seconds =
      previous_ ? std::chrono::duration<double>(now.when - previous_->when).count() : 0;
  if (previous_ && seconds > 0) {
    sample.has_rates = true;
    double own = static_cast<double>(CounterDelta(now.own_bytes, previous_->own_bytes));
    struct Moved {
      const std::string* name;
      double read, written, busy_ms;
    };
    std::vector<Moved> moved;
    double total = 0;
    for (const auto& [name, c] : now.disks) {
      auto it = previous_->disks.find(name);
      if (it == previous_->disks.end()) continue;
      const Counters& p = it->second;
      moved.push_back(
          {&name, kSectorBytes * static_cast<double>(CounterDelta(c.sectors_read, p.sectors_read)),
           kSectorBytes * static_cast<double>(CounterDelta(c.sectors_written, p.sectors_written)),
           static_cast<double>(CounterDelta(c.io_ticks_ms, p.io_ticks_ms))});
      total += moved.back().read + moved.back().written;
    }
    // The share of all disk traffic that was not the agent's.
    double others_share = total > 0 ? std::max(0.0, 1.0 - own / total) : 1.0;
    for (const Moved& m : moved) {
      DiskRate rate;
      rate.name = *m.name;
      rate.read_bytes_per_sec = others_share * m.read / seconds;
      rate.write_bytes_per_sec = others_share * m.written / seconds;
      rate.busy_percent = std::min(100.0, others_share * m.busy_ms / (10.0 * seconds));
      sample.disks.push_back(std::move(rate));
    }
    sample.own_bytes_per_sec = own / seconds;
  }
  previous_ = std::move(now);
  return std::optional<DiskSample>(std::move(sample));
}

}  // namespace sparetime::scheduler
