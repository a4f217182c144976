// Evaluation data: plain text or JSONL (text / input_ids) into one token stream.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "quantforge/error.h"
#include "quantforge/eval.h"

namespace qf {
namespace {

bool LooksLikeJsonl(const std::filesystem::path& path, const std::string& content) {
  const std::string ext = path.extension().string();
  if (ext == ".jsonl" || ext == ".json") return true;
  const size_t first = content.find_first_not_of(" \t\r\n");
  return first != std::string::npos && content[first] == '{';
}

}  // namespace

EvalData LoadEvalData(const std::filesystem::path& path, const Tokenizer* tokenizer) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("cannot open data file", {path.string()});
  const std::string content((std::istreambuf_iterator<char>(file)), {});
  EvalData data;
  const auto need_tokenizer = [&] {
    if (tokenizer == nullptr) {
      throw Error(
          "text data needs a tokenizer: the model directory has none and no --tokenizer was "
          "given (or supply pre-tokenized JSONL with \"input_ids\")",
          {path.string()});
    }
  };
  if (!LooksLikeJsonl(path, content)) {
    need_tokenizer();
    data.format = EvalDataFormat::kText;
    data.tokens = tokenizer->Encode(content);
    data.num_documents = 1;
  } else {
    std::istringstream lines(content);
    std::string line;
    int64_t line_no = 0;
    std::optional<EvalDataFormat> format;
    while (std::getline(lines, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = path.string() + ":" + std::to_string(line_no);
      nlohmann::json json;
      try {
        json = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("invalid JSON: ") + e.what(), {where});
      }
      EvalDataFormat line_format;
      if (json.is_object() && json.contains("input_ids")) {
        line_format = EvalDataFormat::kJsonlInputIds;
        const auto& ids = json["input_ids"];
        if (!ids.is_array()) throw Error("\"input_ids\" must be an array of integers", {where});
        for (size_t i = 0; i < ids.size(); ++i) {
          if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 ||
              ids[i].get<int64_t>() > INT32_MAX) {
            throw Error("input_ids[" + std::to_string(i) + "] is not a token id: " + ids[i].dump(),
                        {where});
          }
          data.tokens.push_back(ids[i].get<int32_t>());
        }
      } else if (json.is_object() && json.contains("text") && json["text"].is_string()) {
        line_format = EvalDataFormat::kJsonlText;
        need_tokenizer();
        const std::vector<int32_t> ids = tokenizer->Encode(json["text"].get<std::string>());
        data.tokens.insert(data.tokens.end(), ids.begin(), ids.end());
      } else {
        throw Error("JSONL line has neither a \"text\" string nor \"input_ids\"", {where});
      }
      if (format && *format != line_format) {
        throw Error("line mixes \"text\" and \"input_ids\" formats with earlier lines", {where});
      }
      format = line_format;
      ++data.num_documents;
    }
    data.format = format.value_or(EvalDataFormat::kJsonlText);
  }
  if (data.tokens.empty()) throw Error("data file holds no tokens (empty text?)", {path.string()});
  return data;
}

std::vector<std::vector<int32_t>> CutSequences(std::span<const int32_t> stream,
                                               std::optional<int32_t> bos,
                                               int64_t max_sequences, int64_t seq_len,
                                               const std::string& data) {
  if (max_sequences < 1) throw Error("--calib-samples must be at least 1", {.path = data});
  if (seq_len < 2) throw Error("--seq-len must be at least 2", {.path = data});
  const int64_t from_stream = bos ? seq_len - 1 : seq_len;
  const int64_t available = static_cast<int64_t>(stream.size()) / from_stream;
  if (available < 1) {
    throw Error("data too short: " + std::to_string(stream.size()) + " tokens, one sequence needs " +
                    std::to_string(from_stream) + " (pass a smaller --seq-len or more data)",
                {.path = data});
  }
  const int64_t count = std::min(max_sequences, available);
  std::vector<std::vector<int32_t>> sequences(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int32_t>& s = sequences[static_cast<size_t>(i)];
    s.reserve(static_cast<size_t>(seq_len));
    if (bos) s.push_back(*bos);
    const auto begin = stream.begin() + i * from_stream;
    s.insert(s.end(), begin, begin + from_stream);
  }
  return sequences;
}

}  // namespace qf
