// Leveled logging to stderr with fmt. QF_LOG_LEVEL (error|warn|info|debug) sets the threshold.
#pragma once

#include <fmt/core.h>

#include <cstdio>
#include <string_view>

namespace qf::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

Level Threshold();
void SetThreshold(Level level);
void Write(Level level, std::string_view message);

template <typename... Args>
void Error(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Warn(fmt::format_string<Args...> f, Args&&... args) {
  if (Threshold() >= Level::kWarn) Write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Info(fmt::format_string<Args...> f, Args&&... args) {
  if (Threshold() >= Level::kInfo) Write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Debug(fmt::format_string<Args...> f, Args&&... args) {
  if (Threshold() >= Level::kDebug) Write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace qf::log
