// IdlePolicyFromDirectory: each mapped field, the defaults of the rest, and
// the capping of out-of-range percentages.
#include "sparetime/scheduler/directory_policy.h"

#include <gtest/gtest.h>

namespace sparetime::scheduler {
namespace {

TEST(DirectoryPolicy, BuiltInDefaultsMatchTheIdlePolicyDefaults) {
  directory::EffectivePolicy effective;  // the directory's built-in defaults
  IdlePolicy mapped = IdlePolicyFromDirectory(effective);
  IdlePolicy defaults;
  EXPECT_EQ(mapped.idle_after, defaults.idle_after);
  EXPECT_EQ(mapped.max_cpu_percent, defaults.max_cpu_percent);
  EXPECT_EQ(mapped.max_io_pressure_percent, defaults.max_io_pressure_percent);
  EXPECT_EQ(mapped.ac_only, defaults.ac_only);
  EXPECT_TRUE(mapped.windows.empty());
  EXPECT_TRUE(mapped.Validate().ok());
  EXPECT_EQ(JobByteRate(effective), 0u);
}

TEST(DirectoryPolicy, MapsEveryIdleField) {
  directory::EffectivePolicy effective;
  effective.idle_minutes = 3;
  effective.idle_cpu_percent = 25;
  effective.idle_io_pressure_percent = 40;
  effective.ac_only = false;
  effective.bandwidth_limit = 10 << 20;
  Result<TimeWindow> evenings = ParseTimeWindow("Mon-Fri 19:00-07:00");
  Result<TimeWindow> weekend = ParseTimeWindow("Sat-Sun 00:00-24:00");
  ASSERT_TRUE(evenings.ok() && weekend.ok());
  effective.windows = {*evenings, *weekend};

  IdlePolicy p = IdlePolicyFromDirectory(effective);
  EXPECT_EQ(p.idle_after, std::chrono::minutes(3));
  EXPECT_EQ(p.max_cpu_percent, 25);
  ASSERT_TRUE(p.max_io_pressure_percent.has_value());
  EXPECT_EQ(*p.max_io_pressure_percent, 40);
  EXPECT_FALSE(p.ac_only);
  ASSERT_EQ(p.windows.size(), 2u);
  EXPECT_EQ(p.windows[0].text, "Mon-Fri 19:00-07:00");
  EXPECT_EQ(p.windows[1].text, "Sat-Sun 00:00-24:00");
  EXPECT_EQ(JobByteRate(effective), 10u << 20);

  // Not in the directory schema: the IdlePolicy defaults stay.
  IdlePolicy defaults;
  EXPECT_EQ(p.settle, defaults.settle);
  EXPECT_EQ(p.resume_delay, defaults.resume_delay);
  EXPECT_EQ(p.max_disk_busy_percent, defaults.max_disk_busy_percent);
  EXPECT_EQ(p.max_memory_pressure_percent, defaults.max_memory_pressure_percent);
  EXPECT_TRUE(p.Validate().ok());
}

TEST(DirectoryPolicy, OutOfRangePercentagesAreCapped) {
  directory::EffectivePolicy effective;
  effective.idle_cpu_percent = 250;
  effective.idle_io_pressure_percent = 101;
  IdlePolicy p = IdlePolicyFromDirectory(effective);
  EXPECT_EQ(p.max_cpu_percent, 100);
  EXPECT_EQ(*p.max_io_pressure_percent, 100);
  EXPECT_TRUE(p.Validate().ok());
}

}  // namespace
}  // namespace sparetime::scheduler
