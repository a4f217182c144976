// A one-line progress bar on stderr for long jobs: done/total, bytes, rate, ETA. Drawn only when
// stderr is a terminal (redrawn at most 10 times a second); otherwise silent, so logs and CI
// output stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace qf::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled);
  ~ProgressBar();

  // `items` of `total_items` done, `bytes` of `total_bytes` processed; `current` names the item.
  void Update(uint64_t items, uint64_t total_items, uint64_t bytes, uint64_t total_bytes,
              std::string_view current);
  void Finish();  // clears the line

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
};


}  // namespace qf::cli
