// TimeWindow: the grammar (days, ranges, lists, wrapping), errors, and
// membership including windows that run past midnight.
#include "sparetime/base/time_window.h"

#include <gtest/gtest.h>

#include <vector>

namespace sparetime {
namespace {

constexpr int kMon = 0, kTue = 1, kWed = 2, kSat = 5, kSun = 6;
int At(int h, int m) { return h * 60 + m; }

TimeWindow MustParse(const std::string& text) {
  Result<TimeWindow> w = ParseTimeWindow(text);
  EXPECT_TRUE(w.ok()) << text << ": " << w.status().ToString();
  return w.ok() ? *w : TimeWindow{};
}

TEST(TimeWindow, ParsesDaysRangesAndLists) {
  TimeWindow w = MustParse("Mon-Fri 19:00-07:00");
  EXPECT_EQ(w.days, 0b0011111);
  EXPECT_EQ(w.start_minute, 19 * 60);
  EXPECT_EQ(w.end_minute, 7 * 60);
  EXPECT_EQ(w.text, "Mon-Fri 19:00-07:00");

  EXPECT_EQ(MustParse("sat 00:00-24:00").days, 0b0100000);
  EXPECT_EQ(MustParse("SUN 00:00-24:00").end_minute, 1440);
  EXPECT_EQ(MustParse("Fri-Mon 08:00-09:00").days, 0b1110001);  // wraps
  EXPECT_EQ(MustParse("Mon,Wed,Fri-Sat 08:00-09:00").days, 0b0110101);
  EXPECT_EQ(MustParse("Mon-Sun 00:00-24:00").days, 0b1111111);
  EXPECT_EQ(MustParse("  Tue   10:15-10:16 ").start_minute, 10 * 60 + 15);
}

TEST(TimeWindow, RejectsMalformedTextNamingIt) {
  const std::vector<std::string> bad = {
      "",  "Mon-Fri",        "19:00-07:00",         "Mon-Fri 19:00",  "Mon-Fry 19:00-07:00",
      "Monday 19:00-07:00", "Mon,,Fri 19:00-07:00", "Mon 24:00-07:00", "Mon 19:60-07:00",
      "Mon 7:00-08:00",     "Mon 25:00-26:00",      "Mon 10:00-10:00", "Mon 00:00-24:01",
      "Mon 10:00-1100",     "Mon aa:00-11:00"};
  for (const std::string& text : bad) {
    Result<TimeWindow> w = ParseTimeWindow(text);
    ASSERT_FALSE(w.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(w.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(w.status().message().find("\"" + text + "\""), std::string::npos)
        << w.status().message();
    EXPECT_NE(w.status().message().find("expected DAYS HH:MM-HH:MM"), std::string::npos);
  }
  EXPECT_NE(ParseTimeWindow("Mon 10:00-10:00").status().message().find("00:00-24:00"),
            std::string::npos);
}

TEST(TimeWindow, SameDayWindow) {
  TimeWindow w = MustParse("Mon,Wed 09:00-17:30");
  EXPECT_TRUE(w.Contains(kMon, At(9, 0)));
  EXPECT_TRUE(w.Contains(kWed, At(17, 29)));
  EXPECT_FALSE(w.Contains(kWed, At(17, 30)));  // end is exclusive
  EXPECT_FALSE(w.Contains(kMon, At(8, 59)));
  EXPECT_FALSE(w.Contains(kTue, At(12, 0)));
}

TEST(TimeWindow, OvernightWindowBelongsToTheDayItStarted) {
  TimeWindow w = MustParse("Mon-Fri 19:00-07:00");
  EXPECT_TRUE(w.Contains(kMon, At(19, 0)));
  EXPECT_TRUE(w.Contains(kTue, At(3, 0)));   // began Monday
  EXPECT_TRUE(w.Contains(kSat, At(3, 0)));   // began Friday
  EXPECT_FALSE(w.Contains(kMon, At(3, 0)));  // Sunday night is not in it
  EXPECT_FALSE(w.Contains(kSat, At(19, 0)));
  EXPECT_FALSE(w.Contains(kTue, At(7, 0)));
  EXPECT_FALSE(w.Contains(kWed, At(12, 0)));
}

TEST(TimeWindow, WholeDayAndOutOfRangeInputs) {
  TimeWindow w = MustParse("Sat-Sun 00:00-24:00");
  EXPECT_TRUE(w.Contains(kSat, 0));
  EXPECT_TRUE(w.Contains(kSun, 1439));
  EXPECT_FALSE(w.Contains(kMon, 0));  // a 24:00 end does not spill into Monday
  EXPECT_FALSE(w.Contains(7, 10));
  EXPECT_FALSE(w.Contains(kSat, 1440));
  EXPECT_FALSE(w.Contains(-1, 10));
}

TEST(TimeWindow, AnyWindowContains) {
  std::vector<TimeWindow> none;
  EXPECT_TRUE(AnyWindowContains(none, kWed, At(12, 0)));  // no windows: any time
  std::vector<TimeWindow> ws = {MustParse("Mon-Fri 19:00-07:00"), MustParse("Sat-Sun 00:00-24:00")};
  EXPECT_TRUE(AnyWindowContains(ws, kSun, At(12, 0)));
  EXPECT_TRUE(AnyWindowContains(ws, kWed, At(23, 0)));
  EXPECT_FALSE(AnyWindowContains(ws, kWed, At(12, 0)));
  // Sunday's whole day ends at midnight and no weekday window began on Sunday.
  EXPECT_FALSE(AnyWindowContains(ws, kMon, At(3, 0)));
  EXPECT_TRUE(AnyWindowContains(ws, kSat, At(3, 0)));  // Friday night
}

}  // namespace
}  // namespace sparetime
