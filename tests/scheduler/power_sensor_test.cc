// PowerSensor over fake /sys/class/power_supply trees: desktops, laptops on
// AC and on battery, battery-only boxes, USB-C chargers, device batteries.
#include "sparetime/scheduler/power_sensor.h"

#include <gtest/gtest.h>

#include "scheduler_testing.h"

namespace sparetime::scheduler {
namespace {

using testing::FakeTree;

class PowerSensorTest : public ::testing::Test {
 protected:
  void Supply(const std::string& name, const std::string& type,
              std::initializer_list<std::pair<std::string, std::string>> attrs) {
    std::string dir = "/sys/class/power_supply/" + name;
    tree_.Write(dir + "/type", type + "\n");
    for (const auto& [k, v] : attrs) tree_.Write(dir + "/" + k, v + "\n");
  }
  PowerSample Read() {
    auto s = PowerSensor(tree_.reader()).Read();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : PowerSample{};
  }
  FakeTree tree_;
};

TEST_F(PowerSensorTest, NoSupplyIsADesktopOnMains) {
  tree_.Mkdir("/sys/class");
  PowerSample none = Read();
  EXPECT_TRUE(none.on_ac);
  EXPECT_EQ(none.supplies, 0);
  EXPECT_EQ(none.Describe(), "no power supply (desktop on mains)");
  tree_.Mkdir("/sys/class/power_supply");  // present but empty (this build machine)
  EXPECT_EQ(Read().Describe(), "no power supply (desktop on mains)");
}

TEST_F(PowerSensorTest, LaptopOnAc) {
  Supply("AC", "Mains", {{"online", "1"}});
  Supply("BAT0", "Battery", {{"capacity", "80"}, {"status", "Charging"}, {"scope", "System"}});
  PowerSample s = Read();
  EXPECT_TRUE(s.on_ac);
  EXPECT_EQ(s.battery_percent, 80);
  EXPECT_EQ(s.Describe(), "on AC, battery 80%");
}

TEST_F(PowerSensorTest, LaptopOnBattery) {
  Supply("AC", "Mains", {{"online", "0"}});
  Supply("BAT0", "Battery", {{"capacity", "74"}, {"status", "Discharging"}});
  PowerSample s = Read();
  EXPECT_FALSE(s.on_ac);
  EXPECT_EQ(s.Describe(), "on battery (74%)");
}

TEST_F(PowerSensorTest, BatteryOnlyBoxesGoByTheBatteryStatus) {
  Supply("BAT0", "Battery", {{"capacity", "55"}, {"status", "Discharging"}});
  EXPECT_FALSE(Read().on_ac);
  Supply("BAT0", "Battery", {{"capacity", "100"}, {"status", "Full"}});
  EXPECT_TRUE(Read().on_ac);
}

TEST_F(PowerSensorTest, TwoBatteriesReportTheLowest) {
  Supply("AC", "Mains", {{"online", "0"}});
  Supply("BAT0", "Battery", {{"capacity", "90"}, {"status", "Discharging"}});
  Supply("BAT1", "Battery", {{"capacity", "12"}, {"status", "Discharging"}});
  EXPECT_EQ(Read().Describe(), "on battery (12%)");
}

TEST_F(PowerSensorTest, UsbChargerCountsAsAc) {
  Supply("ucsi-source-psy-USBC000:001", "USB", {{"online", "1"}});
  Supply("BAT0", "Battery", {{"capacity", "60"}, {"status", "Charging"}});
  EXPECT_TRUE(Read().on_ac);
}

TEST_F(PowerSensorTest, DeviceBatteriesAreIgnored) {
  Supply("hidpp_battery_0", "Battery",
         {{"capacity", "5"}, {"status", "Discharging"}, {"scope", "Device"}});
  PowerSample s = Read();
  EXPECT_TRUE(s.on_ac);
  EXPECT_EQ(s.supplies, 0);
  EXPECT_FALSE(s.battery_percent.has_value());
}

TEST_F(PowerSensorTest, GarbageAttributeIsAnErrorNamingTheFile) {
  Supply("BAT0", "Battery", {{"capacity", "lots"}, {"status", "Discharging"}});
  auto s = PowerSensor(tree_.reader()).Read();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(s.error().message().find("/sys/class/power_supply/BAT0/capacity"), std::string::npos)
      << s.error().message();
  Supply("BAT0", "Battery", {{"capacity", "140"}});
  EXPECT_FALSE(PowerSensor(tree_.reader()).Read().ok());
}

}  // namespace
}  // namespace sparetime::scheduler
