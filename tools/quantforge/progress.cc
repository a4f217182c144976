// ProgressBar implementation.
#include "tools/quantforge/progress.h"

#include <fmt/format.h>

#include <cstdio>

#include "src/util/format.h"

namespace qf::cli {

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Update(uint64_t items, uint64_t total_items, uint64_t bytes,
                         uint64_t total_bytes, std::string_view current) {
  if (!enabled_) return;
  const Clock::time_point now = Clock::now();
  if (drawn_ && items < total_items && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double fraction = total_bytes == 0 ? 1.0 : static_cast<double>(bytes) / total_bytes;
  const double rate = elapsed > 0 ? bytes / elapsed : 0.0;
  const double eta = rate > 0 ? (total_bytes - bytes) / rate : 0.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::string name(current.substr(0, 40));
  fmt::print(stderr, "\r\033[K{} [{}] {}/{} tensors, {} / {}, {}/s, ETA {}  {}", label_, bar,
             items, total_items, FormatBytes(bytes), FormatBytes(total_bytes),
             FormatBytes(static_cast<uint64_t>(rate)), FormatDuration(eta), name);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (enabled_ && drawn_) {
    fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace qf::cli
