// Checks the numbers of a parsed JSON document before its fields are read
// with nlohmann's get<integer>() — which converts a floating-point value with
// static_cast, undefined behaviour when the value does not fit (a status.json
// with "updated": 1.7e26 did it: fuzz finding, issue 26). Every sparetime
// document writes its integers as JSON integers; a floating-point number is
// accepted only under the keys the caller names (e.g. "seconds") and only
// when finite.
//
// Header only (nlohmann_json is header only); base links nothing for it.
#ifndef SPARETIME_BASE_JSON_NUMBERS_H_
#define SPARETIME_BASE_JSON_NUMBERS_H_

#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "sparetime/base/status.h"

namespace sparetime {

namespace json_numbers_internal {
inline bool Ok(const nlohmann::json& j, std::string_view key, std::initializer_list<std::string_view> float_keys,
               std::string& where) {
  if (j.is_number_float()) {
    bool allowed = false;
    for (std::string_view k : float_keys) allowed |= k == key;
    if (!allowed || !std::isfinite(j.get<double>())) {
      where = key.empty() ? std::string("a value") : "\"" + std::string(key) + "\"";
      return false;
    }
    return true;
  }
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (!Ok(v, k, float_keys, where)) return false;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (!Ok(v, key, float_keys, where)) return false;
    }
  }
  return true;
}
}  // namespace json_numbers_internal

// kCorruption "<what>: <field> is not an integer" when a number outside
// `float_keys` is floating-point (or one inside is not finite).
inline Status CheckJsonIntegers(const nlohmann::json& j, const std::string& what,
                                std::initializer_list<std::string_view> float_keys = {}) {
  std::string where;
  if (json_numbers_internal::Ok(j, "", float_keys, where)) return Status::Ok();
  return Status(ErrorCode::kCorruption, what + ": " + where +
                                            " is not an integer (the file is damaged or was not "
                                            "written by sparetime)");
}

}  // namespace sparetime

#endif  // SPARETIME_BASE_JSON_NUMBERS_H_
