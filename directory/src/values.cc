// GeneralizedTime and base64 key codecs (see values.h).
#include "values.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>

namespace sparetime::directory {
namespace {

// Reads `n` decimal digits at `pos`; -1 when they are not all digits.
int Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool IsDigitAt(std::string_view s, size_t pos) {
  return pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]));
}

}  // namespace

Result<TimePoint> ParseGeneralizedTime(std::string_view text) {
  using namespace std::chrono;
  const std::string expected =
      "expected a GeneralizedTime YYYYMMDDHHMMSS[.fff]Z or with a +hhmm/-hhmm offset, "
      "e.g. 20261126041500Z";
  int year = Digits(text, 0, 4), month = Digits(text, 4, 2), day = Digits(text, 6, 2);
  int hour = Digits(text, 8, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0) {
    return InvalidArgument("not a time; " + expected);
  }
  size_t pos = 10;
  int minute = 0, second = 0;
  int64_t unit_us = 3600LL * 1000000;  // the fraction applies to the last field given
  if (IsDigitAt(text, pos)) {
    minute = Digits(text, pos, 2);
    pos += 2;
    unit_us = 60LL * 1000000;
    if (IsDigitAt(text, pos)) {
      second = Digits(text, pos, 2);
      pos += 2;
      unit_us = 1000000;
    }
  }
  if (minute < 0 || second < 0) return InvalidArgument("not a time; " + expected);
  int64_t fraction_us = 0;
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
    ++pos;
    int64_t numerator = 0, denominator = 1;
    size_t start = pos;
    for (; IsDigitAt(text, pos); ++pos) {
      if (denominator < 1000000) {  // microseconds are plenty
        numerator = numerator * 10 + (text[pos] - '0');
        denominator *= 10;
      }
    }
    if (pos == start) return InvalidArgument("a '.' must be followed by digits; " + expected);
    fraction_us = unit_us * numerator / denominator;
  }
  int offset_minutes = 0;
  if (pos < text.size() && text[pos] == 'Z') {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos] == '+' ? 1 : -1;
    int oh = Digits(text, pos + 1, 2);
    int om = 0;
    pos += 3;
    if (IsDigitAt(text, pos)) {
      om = Digits(text, pos, 2);
      pos += 2;
    }
    if (oh < 0 || om < 0 || oh > 23 || om > 59) {
      return InvalidArgument("bad time zone offset; " + expected);
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return InvalidArgument("missing the time zone (Z for UTC); " + expected);
  }
  if (pos != text.size()) return InvalidArgument("trailing characters; " + expected);

  year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                     std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) {
    return InvalidArgument("no such date or time; " + expected);
  }
  if (second == 60) second = 59;  // a leap second: close enough
  sys_days days{ymd};
  TimePoint t = time_point_cast<system_clock::duration>(
      sys_seconds{days} + hours{hour} + minutes{minute} + seconds{second} +
      microseconds{fraction_us} - minutes{offset_minutes});
  return t;
}

std::string FormatGeneralizedTime(TimePoint t) {
  using namespace std::chrono;
  sys_seconds s = floor<seconds>(t);
  sys_days days = floor<std::chrono::days>(s);
  year_month_day ymd{days};
  hh_mm_ss<seconds> hms{s - days};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

bool IsHostName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
  });
}

Result<std::string> DecodeBase64(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return InvalidArgument("not valid standard base64 (A-Z a-z 0-9 + / with = padding)");
  }
  out.resize(len);
  return out;
}

std::string EncodeBase64(std::string_view bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

Result<PublicKey> DecodeKey(std::string_view text) {
  const std::string expected = "expected 32 bytes in standard base64 (44 characters ending in '=')";
  Result<std::string> bytes = DecodeBase64(text);
  if (!bytes.ok()) return InvalidArgument(bytes.status().message() + "; " + expected);
  if (bytes->size() != PublicKey{}.size()) {
    return InvalidArgument("decodes to " + std::to_string(bytes->size()) + " bytes; " + expected);
  }
  PublicKey key;
  std::copy(bytes->begin(), bytes->end(), reinterpret_cast<char*>(key.data()));
  return key;
}

std::string EncodeKey(const PublicKey& key) {
  return EncodeBase64(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
}

}  // namespace sparetime::directory
