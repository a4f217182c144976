// Logging threshold and sink.
#include "src/util/log.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace qf::log {
namespace {

Level LevelFromEnv() {
  const char* env = std::getenv("QF_LOG_LEVEL");
  if (env == nullptr) return Level::kInfo;
  if (std::strcmp(env, "error") == 0) return Level::kError;
  if (std::strcmp(env, "warn") == 0) return Level::kWarn;
  if (std::strcmp(env, "debug") == 0) return Level::kDebug;
  return Level::kInfo;
}

std::atomic<int>& ThresholdStorage() {
  static std::atomic<int> threshold{static_cast<int>(LevelFromEnv())};
  return threshold;
}

}  // namespace

Level Threshold() { return static_cast<Level>(ThresholdStorage().load(std::memory_order_relaxed)); }
void SetThreshold(Level level) { ThresholdStorage().store(static_cast<int>(level)); }

void Write(Level level, std::string_view message) {
  static constexpr const char* kPrefix[] = {"error", "warning", "info", "debug"};
  fmt::print(stderr, "quantforge: {}: {}\n", kPrefix[static_cast<int>(level)], message);
}

}  // namespace qf::log
