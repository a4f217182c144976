// tokenizer.json normalizers and pre-tokenizers. Regexes run through PCRE2 (Debian's
// libpcre2-dev) in UTF + UCP mode, which gives \p{L}, \p{N} and \s the Unicode meanings the
// Rust `regex`/`onig` engines of Hugging Face tokenizers give them.
//
// NFC/NFKC normalizers are accepted and treated as identity: without ICU we cannot compose, and
// calibration text is almost always NFC already (ASCII always is). This is a documented
// deviation; decomposed input may tokenize differently from transformers.
#include "src/tokenizer/hf_pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "quantforge/error.h"

namespace qf::tok {
namespace {

using Json = nlohmann::json;

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const std::string kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

class PrependStep final : public TextStep {
 public:
  explicit PrependStep(std::string prefix) : prefix_(std::move(prefix)) {}
  void Apply(std::vector<Piece>& pieces) const override {
    for (Piece& p : pieces) {
      if (!p.text.empty()) p.text = prefix_ + p.text;
    }
  }

 private:
  std::string prefix_;
};

class ReplaceStep final : public TextStep {
 public:
  ReplaceStep(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void Apply(std::vector<Piece>& pieces) const override {
    for (Piece& p : pieces) p.text = ReplaceAll(std::move(p.text), from_, to_);
  }

 private:
  std::string from_, to_;
};

class RegexSplitStep final : public TextStep {
 public:
  // keep_matches: matches become pieces (Isolated) or are dropped (Removed); gaps are always
  // pieces. prefix_space: ByteLevel's add_prefix_space, applied to every piece before splitting.
  RegexSplitStep(const std::string& pattern, bool keep_matches, bool prefix_space,
                 const std::string& path)
      : keep_matches_(keep_matches), prefix_space_(prefix_space) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      throw Error("pre-tokenizer regex does not compile at offset " + std::to_string(error_offset) +
                      ": " + reinterpret_cast<char*>(message),
                  {path});
    }
  }
  ~RegexSplitStep() override { pcre2_code_free(code_); }
  RegexSplitStep(const RegexSplitStep&) = delete;
  RegexSplitStep& operator=(const RegexSplitStep&) = delete;

  void Apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_, nullptr);
    for (Piece& piece : pieces) {
      std::string text = std::move(piece.text);
      if (prefix_space_ && !text.empty() && text[0] != ' ') text = " " + text;
      bool first = piece.first;
      const auto emit = [&](size_t begin, size_t end) {
        if (end > begin) out.push_back({text.substr(begin, end - begin), first});
        first = false;
      };
      size_t pos = 0, gap_begin = 0;
      while (pos <= text.size()) {
        // The first search validates the UTF-8; later ones start at code point boundaries.
        const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                                   pos, pos == 0 ? 0 : PCRE2_NO_UTF_CHECK, match, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          pcre2_match_data_free(match);
          throw Error("text is not valid UTF-8 (PCRE2 error " + std::to_string(rc) + ")");
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
        const size_t m_begin = ov[0], m_end = ov[1];
        if (m_end == m_begin) {  // empty match: step one code point
          pos = m_end + 1;
          while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
          continue;
        }
        emit(gap_begin, m_begin);
        if (keep_matches_)
          emit(m_begin, m_end);
        else
          first = false;
        gap_begin = pos = m_end;
      }
      emit(gap_begin, text.size());
    }
    pcre2_match_data_free(match);
    pieces = std::move(out);
  }

 private:
  pcre2_code* code_ = nullptr;
  bool keep_matches_;
  bool prefix_space_;
};

class MetaspaceStep final : public TextStep {
 public:
  MetaspaceStep(std::string replacement, std::string prepend_scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(std::move(prepend_scheme)), split_(split) {}
  void Apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (Piece& piece : pieces) {
      std::string text = ReplaceAll(std::move(piece.text), " ", replacement_);
      const bool prepend = scheme_ == "always" || (scheme_ == "first" && piece.first);
      if (prepend && text.compare(0, replacement_.size(), replacement_) != 0) {
        text = replacement_ + text;
      }
      if (!split_) {
        out.push_back({std::move(text), piece.first});
        continue;
      }
      // Split before every replacement character (MergedWithNext).
      size_t begin = 0;
      bool first = piece.first;
      for (size_t pos = replacement_.size(); pos <= text.size(); ++pos) {
        if (pos == text.size() || text.compare(pos, replacement_.size(), replacement_) == 0) {
          if (pos > begin) out.push_back({text.substr(begin, pos - begin), first});
          first = false;
          begin = pos;
        }
      }
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_, scheme_;
  bool split_;
};

std::string PatternOf(const Json& pattern, bool* is_regex, const std::string& path) {
  if (pattern.contains("Regex")) {
    *is_regex = true;
    return pattern["Regex"].get<std::string>();
  }
  if (pattern.contains("String")) {
    *is_regex = false;
    return pattern["String"].get<std::string>();
  }
  throw Error("pattern must be {\"Regex\": ...} or {\"String\": ...}, found " + pattern.dump(),
              {path});
}

std::string QuoteRegex(const std::string& s) { return "\\Q" + s + "\\E"; }

void AddSteps(const Json& step, const std::string& path, bool* byte_level,
              std::vector<std::unique_ptr<TextStep>>& steps) {
  if (step.is_null()) return;
  const std::string type = step.value("type", "");
  if (type == "Sequence") {
    const char* key = step.contains("normalizers") ? "normalizers" : "pretokenizers";
    for (const Json& inner : step[key]) AddSteps(inner, path, byte_level, steps);
  } else if (type == "Prepend") {
    steps.push_back(std::make_unique<PrependStep>(step.at("prepend").get<std::string>()));
  } else if (type == "Replace") {
    bool is_regex = false;
    const std::string from = PatternOf(step.at("pattern"), &is_regex, path);
    if (is_regex) throw Error("Replace normalizer with a regex pattern is not supported", {path});
    steps.push_back(std::make_unique<ReplaceStep>(from, step.at("content").get<std::string>()));
  } else if (type == "NFC" || type == "NFKC") {
    // Identity: see the file comment.
  } else if (type == "ByteLevel") {
    *byte_level = true;
    const bool prefix = step.value("add_prefix_space", false);
    if (step.value("use_regex", true) || prefix) {
      // Without use_regex, an empty-matching pattern leaves pieces whole (prefix space only).
      steps.push_back(std::make_unique<RegexSplitStep>(
          step.value("use_regex", true) ? kGpt2Pattern : "(?!)", true, prefix, path));
    }
  } else if (type == "Split") {
    bool is_regex = false;
    std::string pattern = PatternOf(step.at("pattern"), &is_regex, path);
    if (!is_regex) pattern = QuoteRegex(pattern);
    const std::string behavior = step.value("behavior", "Isolated");
    if (step.value("invert", false) || (behavior != "Isolated" && behavior != "Removed")) {
      throw Error("Split pre-tokenizer with behavior '" + behavior +
                      "'/invert is not supported (supported: Isolated, Removed)",
                  {path});
    }
    steps.push_back(std::make_unique<RegexSplitStep>(pattern, behavior == "Isolated", false, path));
  } else if (type == "Metaspace") {
    std::string scheme = step.value("prepend_scheme", "");
    if (scheme.empty()) scheme = step.value("add_prefix_space", true) ? "always" : "never";
    steps.push_back(std::make_unique<MetaspaceStep>(step.value("replacement", kMetaspace), scheme,
                                                    step.value("split", true)));
  } else {
    throw Error("tokenizer.json normalizer/pre-tokenizer type '" + type +
                    "' is not supported (supported: Sequence, Prepend, Replace, NFC, NFKC, "
                    "ByteLevel, Split, Metaspace)",
                {path});
  }
}

}  // namespace

std::vector<std::unique_ptr<TextStep>> BuildTextSteps(const Json& normalizer,
                                                      const Json& pre_tokenizer,
                                                      const std::string& path, bool* byte_level) {
  std::vector<std::unique_ptr<TextStep>> steps;
  *byte_level = false;
  AddSteps(normalizer, path, byte_level, steps);
  AddSteps(pre_tokenizer, path, byte_level, steps);
  return steps;
}

std::string ByteLevelEncode(std::string_view bytes) {
  // bytes_to_unicode: printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map to
  // themselves, the other 68 bytes to U+0100 + n in byte order.
  static constexpr auto kTable = [] {
    std::array<uint16_t, 256> table{};
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      table[b] = static_cast<uint16_t>(printable ? b : 256 + n++);
    }
    return table;
  }();
  std::string out;
  for (const char c : bytes) {
    const uint16_t cp = kTable[static_cast<unsigned char>(c)];
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

}  // namespace qf::tok
