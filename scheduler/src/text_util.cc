// Text helpers for the sensors (see text_util.h).
#include "text_util.h"

#include <charconv>
#include <cstdio>

namespace sparetime::scheduler {

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> ParseU64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

Status UnexpectedContent(std::string_view path, size_t line_number, std::string_view what,
                         std::string_view line) {
  constexpr size_t kMaxShown = 80;
  std::string shown(line.substr(0, kMaxShown));
  if (line.size() > kMaxShown) shown += "...";
  return Corruption(std::string(path) + " line " + std::to_string(line_number) + ": expected " +
                    std::string(what) + ", got \"" + shown +
                    "\" (not the Linux format this sensor reads; the sensor is skipped)");
}

std::string FormatPercent(double percent) {
  char buf[32];
  if (percent < 10 && percent != static_cast<double>(static_cast<int64_t>(percent))) {
    std::snprintf(buf, sizeof buf, "%.1f%%", percent);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f%%", percent);
  }
  return buf;
}

std::string FormatRate(double bytes_per_sec) {
  char buf[32];
  if (bytes_per_sec < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f B/s", bytes_per_sec);
  } else if (bytes_per_sec < 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f kB/s", bytes_per_sec / 1e3);
  } else if (bytes_per_sec < 1e9) {
    std::snprintf(buf, sizeof buf, "%.1f MB/s", bytes_per_sec / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f GB/s", bytes_per_sec / 1e9);
  }
  return buf;
}

std::string FormatDuration(std::chrono::nanoseconds d) {
  int64_t s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + " s";
  if (s < 120 * 60) return std::to_string(s / 60) + " min";
  return std::to_string(s / 3600) + " h";
}

}  // namespace sparetime::scheduler
