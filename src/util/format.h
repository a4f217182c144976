// Human-readable figures for summaries and progress lines.
#pragma once

#include <cstdint>
#include <string>

namespace qf {

std::string FormatBytes(uint64_t bytes);     // "512 B", "1.50 GiB"
std::string FormatDuration(double seconds);  // "42s", "1m05s", "2h03m"

}  // namespace qf
