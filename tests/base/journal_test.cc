// Journal lines: the "<N>" priority prefix and the structured fields.
#include "sparetime/base/journal.h"

#include <gtest/gtest.h>

namespace sparetime {
namespace {

TEST(Journal, LineCarriesThePriorityPrefix) {
  EXPECT_EQ(JournalLine(Priority::kErr, "sparetimed", "backup /dev/sda failed: no peers"),
            "<3>sparetimed: backup /dev/sda failed: no peers");
  EXPECT_EQ(JournalLine(Priority::kWarning, "sparetimed", "a"), "<4>sparetimed: a");
  EXPECT_EQ(JournalLine(Priority::kInfo, "sparetimed", "a"), "<6>sparetimed: a");
  // One entry is one line.
  EXPECT_EQ(JournalLine(Priority::kNotice, "x", "two\nlines\r"), "<5>x: two lines ");
}

TEST(Journal, FieldsOnlyWhenSet) {
  EXPECT_EQ(JournalFields(Priority::kInfo, "sparetimed", "started", {}),
            (std::vector<std::string>{"MESSAGE=started", "PRIORITY=6",
                                      "SYSLOG_IDENTIFIER=sparetimed"}));
  LogFields f{.job = "backup /dev/vg0/root", .device = "/dev/vg0/root", .peer = "beta"};
  EXPECT_EQ(JournalFields(Priority::kErr, "sparetimed", "failed\nbadly", f),
            (std::vector<std::string>{"MESSAGE=failed badly", "PRIORITY=3",
                                      "SYSLOG_IDENTIFIER=sparetimed",
                                      "JOB=backup /dev/vg0/root", "DEVICE=/dev/vg0/root",
                                      "PEER=beta"}));
}

}  // namespace
}  // namespace sparetime
