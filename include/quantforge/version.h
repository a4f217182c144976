// The quantforge version, written into every exported checkpoint's producer field.
#pragma once

#define QF_VERSION_STRING "0.1.0"

namespace qf {
inline constexpr const char* kVersion = QF_VERSION_STRING;
}  // namespace qf
