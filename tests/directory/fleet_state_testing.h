// Builders of the published backup state (directory/fleet_state.h) for the
// tests that compare it field by field: fleet_state_test, backup_state_test,
// fleet_test. One definition, inline, here only.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "sparetime/directory/fleet_state.h"

namespace sparetime::directory::testing {

inline DeviceBackupState Dev(std::string device, int64_t time = 0, uint64_t size = 0,
                             std::string snapshot = "", uint64_t seconds = 0, uint64_t stored = 0,
                             bool forced = false) {
  DeviceBackupState d;
  d.device = std::move(device);
  d.time = time;
  d.size = size;
  d.snapshot = std::move(snapshot);
  d.seconds = seconds;
  d.stored = stored;
  d.forced = forced;
  return d;
}

inline BackupHealth Health(uint32_t replicas, uint64_t healthy, uint64_t under, int64_t last_verify = 0,
                           std::string error = "", int64_t error_time = 0) {
  BackupHealth h;
  h.replicas = replicas;
  h.healthy = healthy;
  h.under_replicated = under;
  h.last_verify = last_verify;
  h.last_error = std::move(error);
  h.last_error_time = error_time;
  return h;
}

}  // namespace sparetime::directory::testing
