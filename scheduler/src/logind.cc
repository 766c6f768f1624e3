// The sd-bus IdleHintSource: reads two properties of logind's Manager object.
// Invariant: bus_ is either null or a connection that has not failed yet.
#include "sparetime/scheduler/logind.h"

#include <systemd/sd-bus.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sparetime::scheduler {
namespace {

constexpr const char* kService = "org.freedesktop.login1";
constexpr const char* kPath = "/org/freedesktop/login1";
constexpr const char* kInterface = "org.freedesktop.login1.Manager";

struct BusUnref {
  void operator()(sd_bus* bus) const { sd_bus_flush_close_unref(bus); }
};

// Owns an sd_bus_error and frees it.
class BusError {
 public:
  BusError() = default;
  ~BusError() { sd_bus_error_free(&error_); }
  BusError(const BusError&) = delete;
  BusError& operator=(const BusError&) = delete;
  sd_bus_error* get() { return &error_; }
  std::string Describe(int r) const {
    if (sd_bus_error_is_set(&error_)) return std::string(error_.name) + ": " + error_.message;
    return std::strerror(-r);
  }

 private:
  sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

class LogindIdleHintSource final : public IdleHintSource {
 public:
  Result<std::optional<IdleHint>> Read() override {
    if (!bus_) {
      sd_bus* bus = nullptr;
      if (sd_bus_open_system(&bus) < 0) return std::optional<IdleHint>();  // no system bus here
      bus_.reset(bus);
    }
    int idle = 0;
    uint64_t since_usec = 0;
    BusError e1, e2;
    int r = sd_bus_get_property_trivial(bus_.get(), kService, kPath, kInterface, "IdleHint",
                                        e1.get(), 'b', &idle);
    if (r >= 0) {
      r = sd_bus_get_property_trivial(bus_.get(), kService, kPath, kInterface, "IdleSinceHint",
                                      e2.get(), 't', &since_usec);
    }
    if (r < 0) {
      bus_.reset();
      std::string why = e1.Describe(r);
      if (sd_bus_error_is_set(e2.get())) why = e2.Describe(r);
      // No logind on the bus (a container, a non-systemd init): not an error.
      if (why.find("ServiceUnknown") != std::string::npos ||
          why.find("NameHasNoOwner") != std::string::npos || r == -ENOENT || r == -ECONNREFUSED) {
        return std::optional<IdleHint>();
      }
      return Unavailable("reading logind IdleHint over the system bus: " + why +
                         " (check that systemd-logind is running)");
    }
    IdleHint hint;
    hint.idle = idle != 0;
    hint.since = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::microseconds(since_usec)));
    return std::optional<IdleHint>(hint);
  }

 private:
  std::unique_ptr<sd_bus, BusUnref> bus_;
};

}  // namespace

std::unique_ptr<IdleHintSource> NewLogindIdleHintSource() {
  return std::make_unique<LogindIdleHintSource>();
}

}  // namespace sparetime::scheduler
