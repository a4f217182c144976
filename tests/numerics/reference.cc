// Spec-derived reference codecs for the numerics tests (see reference.h). Deliberately slow and
// obvious: exhaustive or binary search over a table of decoded values.
#include "tests/numerics/reference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

namespace qf::test {

bool ReferenceIsNaN(const FormatSpec& f, uint32_t code) {
  const uint32_t exponent_all_ones = (1u << f.exponent_bits) - 1;
  const uint32_t fraction_all_ones = (1u << f.fraction_bits) - 1;
  const uint32_t e = (code >> f.fraction_bits) & exponent_all_ones;
  const uint32_t m = code & fraction_all_ones;
  switch (f.specials) {
    case Specials::kNone:
      return false;
    case Specials::kNaNAllOnes:
      return e == exponent_all_ones && m == fraction_all_ones;
    case Specials::kIEEE:
      return e == exponent_all_ones && m != 0;
  }
  return false;
}

bool ReferenceIsInf(const FormatSpec& f, uint32_t code) {
  const uint32_t exponent_all_ones = (1u << f.exponent_bits) - 1;
  const uint32_t e = (code >> f.fraction_bits) & exponent_all_ones;
  const uint32_t m = code & ((1u << f.fraction_bits) - 1);
  return f.specials == Specials::kIEEE && e == exponent_all_ones && m == 0;
}

double ReferenceDecode(const FormatSpec& f, uint32_t code) {
  const double sign = (code & SignBit(f)) ? -1.0 : 1.0;
  if (ReferenceIsNaN(f, code)) return std::copysign(std::numeric_limits<double>::quiet_NaN(), sign);
  if (ReferenceIsInf(f, code)) return sign * std::numeric_limits<double>::infinity();
  const int e = static_cast<int>((code >> f.fraction_bits) & ((1u << f.exponent_bits) - 1));
  const int m = static_cast<int>(code & ((1u << f.fraction_bits) - 1));
  const double fraction = std::ldexp(static_cast<double>(m), -f.fraction_bits);  // m / 2^M
  if (e == 0) return sign * std::ldexp(fraction, 1 - f.bias);  // subnormal: 0.m * 2^(1-bias)
  return sign * std::ldexp(1.0 + fraction, e - f.bias);        // normal: 1.m * 2^(e-bias)
}

namespace {

// Finite non-negative codes in increasing order with their values, built once per format.
struct CodeTable {
  std::vector<uint32_t> codes;
  std::vector<double> values;
};

const CodeTable& PositiveFiniteTable(const FormatSpec& f) {
  static std::map<std::string, CodeTable> tables;  // test-only cache, single-threaded tests
  CodeTable& table = tables[f.name];
  if (table.codes.empty()) {
    for (uint32_t code = 0; code < SignBit(f); ++code) {
      if (ReferenceIsNaN(f, code) || ReferenceIsInf(f, code)) continue;
      table.codes.push_back(code);
      table.values.push_back(ReferenceDecode(f, code));
    }
  }
  return table;
}

// Nearest table entry to a >= 0 (a <= the largest value), ties to the even code. For tables of
// at most 256 codes this is a plain exhaustive scan; for the 16-bit formats a binary search finds
// the two neighbours (the table is sorted: checked by the tests' decode monotonicity test).
uint32_t NearestCode(const CodeTable& table, double a) {
  size_t best = 0;
  if (table.codes.size() <= 256) {
    for (size_t i = 1; i < table.codes.size(); ++i) {
      const double d = std::fabs(table.values[i] - a);
      const double best_d = std::fabs(table.values[best] - a);
      if (d < best_d || (d == best_d && (table.codes[i] & 1u) == 0)) best = i;
    }
    return table.codes[best];
  }
  const size_t hi =
      std::lower_bound(table.values.begin(), table.values.end(), a) - table.values.begin();
  if (hi == 0) return table.codes[0];
  const size_t lo = hi - 1;
  const double d_lo = a - table.values[lo];
  const double d_hi = table.values[hi] - a;
  if (d_lo < d_hi) return table.codes[lo];
  if (d_hi < d_lo) return table.codes[hi];
  return (table.codes[lo] & 1u) == 0 ? table.codes[lo] : table.codes[hi];
}

}  // namespace

uint32_t ReferenceEncode(const FormatSpec& f, double x) {
  const bool negative = f.sign_from_less_than_zero ? (x < 0.0) : std::signbit(x);
  const uint32_t sign = negative ? SignBit(f) : 0u;
  if (std::isnan(x)) return f.nan_code | sign;
  if (std::isinf(x) && f.specials == Specials::kIEEE) {
    return sign | (((1u << f.exponent_bits) - 1) << f.fraction_bits);
  }
  const CodeTable& table = PositiveFiniteTable(f);
  const double a = std::min(std::fabs(x), table.values.back());  // saturate (Inf included)
  return sign | NearestCode(table, a);
}

double ReferenceDecodeE8M0(uint32_t code) {
  if (code == 0xFF) return std::numeric_limits<double>::quiet_NaN();
  return std::ldexp(1.0, static_cast<int>(code) - 127);
}

uint32_t ReferenceEncodeE8M0(double x) {
  if (std::isnan(x)) return 0xFF;
  static CodeTable table;
  if (table.codes.empty()) {
    for (uint32_t code = 0; code < 0xFF; ++code) {
      table.codes.push_back(code);
      table.values.push_back(ReferenceDecodeE8M0(code));
    }
  }
  return NearestCode(table, std::min(std::fabs(x), table.values.back()));
}

std::string Hex(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%x", value);
  return buffer;
}

}  // namespace qf::test
