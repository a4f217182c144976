// Escaping text for the sweep report's SVG and HTML (both XML-like): the one place that knows
// which characters must become entities inside element text and double-quoted attributes.
#pragma once

#include <string>
#include <string_view>

namespace qf {

inline std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace qf
