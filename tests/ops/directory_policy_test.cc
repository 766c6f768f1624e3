// IdlePolicyFromDirectory: each mapped field, the defaults of the rest, and
// the capping of out-of-range percentages.
#include "sparetime/ops/directory_policy.h"

#include <gtest/gtest.h>

namespace sparetime::ops {
namespace {

using scheduler::IdlePolicy;

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

// sparetime.conf [scheduler]: the box's hysteresis and ignore_load on top of
// the directory's thresholds; the defaults change nothing.
TEST(DirectoryPolicy, AgentConfigAdjustsTheDirectoryPolicy) {
  directory::EffectivePolicy effective;
  effective.idle_minutes = 3;
  config::AgentConfig defaults;
  IdlePolicy same = AgentIdlePolicy(effective, defaults);
  IdlePolicy mapped = IdlePolicyFromDirectory(effective);
  EXPECT_EQ(same.settle, mapped.settle);
  EXPECT_EQ(same.load_grace, mapped.load_grace);
  EXPECT_EQ(same.resume_delay, mapped.resume_delay);
  EXPECT_EQ(same.max_cpu_percent, mapped.max_cpu_percent);

  config::AgentConfig local;
  local.settle = std::chrono::seconds(2);
  local.load_grace = std::chrono::seconds(1);
  local.resume_delay = std::chrono::milliseconds(1500);
  local.ignore_load = true;
  IdlePolicy p = AgentIdlePolicy(effective, local);
  EXPECT_EQ(p.idle_after, std::chrono::minutes(3));  // still the directory's
  EXPECT_EQ(p.settle, std::chrono::seconds(2));
  EXPECT_EQ(p.load_grace, std::chrono::seconds(1));
  EXPECT_EQ(p.resume_delay, std::chrono::seconds(1));
  EXPECT_EQ(p.max_cpu_percent, 100);
  EXPECT_EQ(p.max_disk_busy_percent, 100);
  EXPECT_FALSE(p.max_io_pressure_percent.has_value());
  EXPECT_FALSE(p.max_memory_pressure_percent.has_value());
  EXPECT_TRUE(p.ac_only);  // power is not load
  EXPECT_TRUE(p.Validate().ok());
}

}  // namespace
}  // namespace sparetime::ops
