// TimeWindow: a weekly time window such as "Mon-Fri 19:00-07:00" or
// "Sat-Sun 00:00-24:00", as written in policies (sparetimeWindow) and the
// config file. The directory validates windows with it; the scheduler asks
// whether a local time falls inside one.
//
// Grammar: DAYS " " HH:MM "-" HH:MM, where DAYS is a day ("Mon"), a range
// ("Mon-Fri", wrapping allowed: "Fri-Mon") or a comma list of those
// ("Mon,Wed,Fri-Sat"); day names are the English three-letter abbreviations,
// case-insensitive; times are 00:00..23:59, the end may also be 24:00. An end
// before the start runs past midnight: "Mon-Fri 19:00-07:00" includes Tuesday
// 03:00 (the night that began Monday) and Saturday 03:00 (began Friday).
// Start equal to end is an error (say 00:00-24:00 for a whole day).
#ifndef SPARETIME_BASE_TIME_WINDOW_H_
#define SPARETIME_BASE_TIME_WINDOW_H_

#include <cstdint>
#include <span>
#include <string>

#include "sparetime/base/status.h"

namespace sparetime {

struct TimeWindow {
  uint8_t days = 0;           // days the window starts on: bit 0 = Monday ... bit 6 = Sunday
  uint16_t start_minute = 0;  // 0..1439
  uint16_t end_minute = 0;    // 1..1440
  std::string text;           // as written

  // `weekday` 0 = Monday ... 6 = Sunday, `minute_of_day` 0..1439, local time.
  bool Contains(int weekday, int minute_of_day) const;
};

// kInvalidArgument naming the text and what is wrong with it.
Result<TimeWindow> ParseTimeWindow(const std::string& text);

// True when any window contains the time; an empty list means "any time".
bool AnyWindowContains(std::span<const TimeWindow> windows, int weekday, int minute_of_day);

}  // namespace sparetime

#endif  // SPARETIME_BASE_TIME_WINDOW_H_
