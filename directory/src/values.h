// Value codecs shared by the directory modules: LDAP GeneralizedTime
// (RFC 4517 3.3.13) and 32-byte keys as standard base64 (the form of
// sparetimePublicKey and sparetimeEscrowPublicKey).
//
// Invariants: parsers accept exactly the documented forms and say what is
// wrong; formatters produce what the parsers accept. Pure functions.
#ifndef SPARETIME_DIRECTORY_SRC_VALUES_H_
#define SPARETIME_DIRECTORY_SRC_VALUES_H_

#include <string>
#include <string_view>

#include "sparetime/base/status.h"
#include "sparetime/directory/records.h"

namespace sparetime::directory {

// YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|+hh[mm]|-hh[mm]). The error says why,
// without naming an entry (callers add that).
Result<TimePoint> ParseGeneralizedTime(std::string_view text);
// "YYYYMMDDHHMMSSZ" in UTC, whole seconds.
std::string FormatGeneralizedTime(TimePoint t);

// Standard base64 with padding of exactly 32 bytes (44 characters).
Result<PublicKey> DecodeKey(std::string_view text);
std::string EncodeKey(const PublicKey& key);

// Agent and host names are host names: 1..255 of letters, digits, '-', '.'
// and '_' (so they need no escaping in a DN or a search filter).
bool IsHostName(std::string_view name);

// Standard base64 with padding, any length (LDIF "attr:: " values).
Result<std::string> DecodeBase64(std::string_view text);
std::string EncodeBase64(std::string_view bytes);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_SRC_VALUES_H_
