// NetworkSensor: /proc/net/dev deltas ("iface: rx_bytes ... (8 rx fields)
// tx_bytes ..."), loopback excluded, the agent's own bytes subtracted.
// Invariant: a counter that went backwards (interface re-created) counts as
// zero for that interval.
#include "sparetime/scheduler/network_sensor.h"

#include <algorithm>

#include "text_util.h"

namespace sparetime::scheduler {
namespace {

constexpr std::string_view kNetDev = "/proc/net/dev";
constexpr size_t kHeaderLines = 2;

Result<std::map<std::string, uint64_t>> ParseNetDev(std::string_view text) {
  std::map<std::string, uint64_t> out;
  std::vector<std::string_view> lines = SplitLines(text);
  for (size_t i = kHeaderLines; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    std::string_view name =
        colon == std::string_view::npos ? "" : TrimSpace(lines[i].substr(0, colon));
    std::vector<std::string_view> f = colon == std::string_view::npos
                                          ? std::vector<std::string_view>()
                                          : SplitFields(lines[i].substr(colon + 1));
    std::optional<uint64_t> rx, tx;
    if (f.size() >= 16) {
      rx = ParseU64(f[0]);
      tx = ParseU64(f[8]);
    }
    if (name.empty() || !rx || !tx) {
      return UnexpectedContent(kNetDev, i + 1, "\"iface: 8 receive and 8 transmit counters\"",
                               lines[i]);
    }
    if (name == "lo") continue;
    out[std::string(name)] = *rx + *tx;
  }
  return out;
}

}  // namespace

std::string NetworkSample::Describe() const {
  if (!has_rates) return "network: measuring";
  std::string s = "network " + FormatRate(bytes_per_sec);
  if (!busiest_interface.empty()) s += " (" + busiest_interface + ")";
  return s;
}

Result<std::optional<NetworkSample>> NetworkSensor::Read() {
  ST_ASSIGN_OR_RETURN(std::optional<std::string> text, reader_.ReadFileIfExists(kNetDev));
  if (!text) return std::optional<NetworkSample>();
  Reading now;
  now.when = clock_.MonoNow();
  ST_ASSIGN_OR_RETURN(now.interfaces, ParseNetDev(*text));
  now.own = own_bytes_ ? own_bytes_() : 0;

  NetworkSample sample;
  double seconds =
      previous_ ? std::chrono::duration<double>(now.when - previous_->when).count() : 0;
  if (previous_ && seconds > 0) {
    sample.has_rates = true;
    uint64_t total = 0, busiest = 0;
    for (const auto& [name, bytes] : now.interfaces) {
      auto it = previous_->interfaces.find(name);
      if (it == previous_->interfaces.end()) continue;
      uint64_t d = CounterDelta(bytes, it->second);
      total += d;
      if (d > busiest) {
        busiest = d;
        sample.busiest_interface = name;
      }
    }
    double own = static_cast<double>(CounterDelta(now.own, previous_->own));
    sample.own_bytes_per_sec = own / seconds;
    sample.bytes_per_sec = std::max(0.0, static_cast<double>(total) - own) / seconds;
  }
  previous_ = std::move(now);
  return std::optional<NetworkSample>(std::move(sample));
}

}  // namespace sparetime::scheduler
