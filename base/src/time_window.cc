// TimeWindow parsing and membership (grammar in time_window.h). Parsing is
// strict and names the offending part; Contains() is a pure function of the
// window and a local (weekday, minute) pair.
#include "sparetime/base/time_window.h"

#include <array>
#include <cctype>
#include <string_view>

namespace sparetime {
namespace {

constexpr std::array<std::string_view, 7> kDayNames = {"mon", "tue", "wed", "thu",
                                                       "fri", "sat", "sun"};
constexpr int kMinutesPerDay = 24 * 60;

Status Bad(const std::string& text, const std::string& why) {
  return InvalidArgument("time window \"" + text + "\": " + why +
                         " (expected DAYS HH:MM-HH:MM, e.g. \"Mon-Fri 19:00-07:00\" or "
                         "\"Sat,Sun 00:00-24:00\")");
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Day index 0 = Monday, or -1.
int DayIndex(std::string_view name) {
  if (name.size() != 3) return -1;
  for (size_t i = 0; i < kDayNames.size(); ++i) {
    bool same = true;
    for (size_t j = 0; j < 3; ++j) {
      same = same && std::tolower(static_cast<unsigned char>(name[j])) == kDayNames[i][j];
    }
    if (same) return static_cast<int>(i);
  }
  return -1;
}

Result<uint8_t> ParseDays(const std::string& text, std::string_view days) {
  uint8_t mask = 0;
  while (true) {
    size_t comma = days.find(',');
    std::string_view item = Trim(days.substr(0, comma));
    size_t dash = item.find('-');
    int first = DayIndex(Trim(item.substr(0, dash)));
    int last = dash == std::string_view::npos ? first : DayIndex(Trim(item.substr(dash + 1)));
    if (first < 0 || last < 0) {
      return Bad(text, "\"" + std::string(item) +
                           "\" is not a day or day range (days are Mon Tue Wed Thu Fri Sat Sun)");
    }
    for (int d = first;; d = (d + 1) % 7) {  // a range may wrap: Fri-Mon
      mask = static_cast<uint8_t>(mask | (1u << d));
      if (d == last) break;
    }
    if (comma == std::string_view::npos) break;
    days.remove_prefix(comma + 1);
  }
  return mask;
}

// "HH:MM" -> minute of day; 24:00 (= 1440) only when `allow_end_of_day`.
Result<uint16_t> ParseClock(const std::string& text, std::string_view clock,
                            bool allow_end_of_day) {
  auto digit = [&](size_t i) { return std::isdigit(static_cast<unsigned char>(clock[i])) != 0; };
  if (clock.size() != 5 || clock[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4)) {
    return Bad(text, "\"" + std::string(clock) + "\" is not a time HH:MM");
  }
  int hours = (clock[0] - '0') * 10 + (clock[1] - '0');
  int minutes = (clock[3] - '0') * 10 + (clock[4] - '0');
  int total = hours * 60 + minutes;
  if (minutes > 59 || total > kMinutesPerDay || (total == kMinutesPerDay && !allow_end_of_day)) {
    return Bad(text, "\"" + std::string(clock) + "\" is out of range (00:00..23:59, or 24:00 as an end)");
  }
  return static_cast<uint16_t>(total);
}

}  // namespace

bool TimeWindow::Contains(int weekday, int minute_of_day) const {
  if (weekday < 0 || weekday > 6 || minute_of_day < 0 || minute_of_day >= kMinutesPerDay) {
    return false;
  }
  auto starts_on = [&](int day) { return (days >> day) & 1u; };
  if (start_minute < end_minute) {
    return starts_on(weekday) && minute_of_day >= start_minute && minute_of_day < end_minute;
  }
  // Runs past midnight: the evening part belongs to today's start, the
  // morning part to a window that started yesterday.
  return (starts_on(weekday) && minute_of_day >= start_minute) ||
         (starts_on((weekday + 6) % 7) && minute_of_day < end_minute);
}

Result<TimeWindow> ParseTimeWindow(const std::string& text) {
  std::string_view all = Trim(text);
  size_t space = all.find_last_of(" \t");
  if (space == std::string_view::npos) return Bad(text, "missing the days or the times");
  std::string_view days = Trim(all.substr(0, space));
  std::string_view times = all.substr(space + 1);
  size_t dash = times.find('-');
  if (dash == std::string_view::npos) return Bad(text, "\"" + std::string(times) + "\" is not HH:MM-HH:MM");

  TimeWindow window;
  window.text = text;
  ST_ASSIGN_OR_RETURN(window.days, ParseDays(text, days));
  ST_ASSIGN_OR_RETURN(window.start_minute, ParseClock(text, times.substr(0, dash), false));
  ST_ASSIGN_OR_RETURN(window.end_minute, ParseClock(text, times.substr(dash + 1), true));
  if (window.start_minute == window.end_minute) {
    return Bad(text, "start equals end; write 00:00-24:00 for a whole day");
  }
  return window;
}

bool AnyWindowContains(std::span<const TimeWindow> windows, int weekday, int minute_of_day) {
  if (windows.empty()) return true;
  for (const TimeWindow& w : windows) {
    if (w.Contains(weekday, minute_of_day)) return true;
  }
  return false;
}

}  // namespace sparetime
