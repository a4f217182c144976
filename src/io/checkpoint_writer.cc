// qf::CheckpointWriter: shards planned up front, headers written first, tensor bytes placed with
// pwrite in any order. Memory use is the plan and one header per shard; data is never buffered.
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "src/io/file_io.h"
#include "src/io/safetensors_format.h"

namespace qf {

namespace fs = std::filesystem;

namespace {

enum class State : uint8_t { kPending, kWriting, kDone };

// Hugging Face's shard file names: model-00001-of-00003.safetensors (5 digits, 1-based).
std::string ShardName(size_t index, size_t count) {
  if (count == 1) return "model.safetensors";
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

}  // namespace

struct CheckpointWriter::Impl {
  fs::path dir;
  WriterOptions options;
  std::vector<TensorInfo> tensors;  // declared order; absolute offsets in `file` once planned
  std::vector<size_t> shard_of;     // parallel to tensors
  std::vector<State> state;         // parallel to tensors; guarded by mutex
  std::unordered_map<std::string, size_t> by_name;
  std::vector<std::string> shard_names;
  std::vector<io::OutputFile> files;
  uint64_t total_bytes = 0;
  bool finished = false;
  std::mutex mutex;
};

CheckpointWriter::CheckpointWriter(const fs::path& dir, std::vector<TensorSpec> plan,
                                   WriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.dir = dir;
  w.options = std::move(options);
  if (w.options.max_shard_bytes == 0) throw Error("max shard size must be positive", {dir.string()});

  // Shard assignment in declared order: close the current shard before a tensor that would push
  // it over the limit; a tensor larger than the limit alone fills its own shard.
  std::vector<uint64_t> shard_bytes;
  for (TensorSpec& p : plan) {
    if (p.name.empty() || p.name == "__metadata__") {
      throw Error("invalid tensor name '" + p.name + "'", {dir.string()});
    }
    if (!w.by_name.emplace(p.name, w.tensors.size()).second) {
      throw Error("tensor planned twice", {dir.string(), p.name});
    }
    const auto num_elements = static_cast<uint64_t>(NumElements(p.shape));
    if (num_elements > (uint64_t{1} << 62) / DTypeSize(p.dtype)) {
      throw Error("tensor of " + std::to_string(num_elements) + " elements is too large", {dir.string(), p.name});
    }
    const uint64_t num_bytes = num_elements * DTypeSize(p.dtype);
    if (shard_bytes.empty() ||
        (shard_bytes.back() > 0 && shard_bytes.back() + num_bytes > w.options.max_shard_bytes)) {
      shard_bytes.push_back(0);
    }
    TensorInfo info{std::move(p.name), p.dtype, std::move(p.shape), {}, shard_bytes.back(),
                    shard_bytes.back() + num_bytes};
    shard_bytes.back() += num_bytes;
    w.total_bytes += num_bytes;
    w.shard_of.push_back(shard_bytes.size() - 1);
    w.tensors.push_back(std::move(info));
  }
  if (shard_bytes.empty()) shard_bytes.push_back(0);  // an empty checkpoint is one empty shard
  w.state.assign(w.tensors.size(), State::kPending);

  std::map<std::string, std::string> metadata = w.options.metadata;
  metadata["format"] = "pt";
  for (size_t s = 0; s < shard_bytes.size(); ++s) {
    w.shard_names.push_back(ShardName(s, shard_bytes.size()));
    std::vector<TensorInfo> in_shard;  // offsets relative to the data section
    for (size_t t = 0; t < w.tensors.size(); ++t) {
      if (w.shard_of[t] == s) in_shard.push_back(w.tensors[t]);
    }
    const std::string header = io::SerializeHeader(in_shard, metadata);
    for (size_t t = 0; t < w.tensors.size(); ++t) {
      if (w.shard_of[t] != s) continue;
      w.tensors[t].file = w.shard_names[s];
      w.tensors[t].data_begin += header.size();
      w.tensors[t].data_end += header.size();
    }
    io::OutputFile file((dir / w.shard_names[s]).string());
    file.Reserve(header.size() + shard_bytes[s]);
    file.WriteAt(0, std::as_bytes(std::span<const char>(header.data(), header.size())));
    w.files.push_back(std::move(file));
  }
}

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::Write(std::string_view name, std::span<const std::byte> data) {
  ThrowIfCancelled();
  Impl& w = *impl_;
  const auto it = w.by_name.find(std::string(name));
  if (it == w.by_name.end()) throw Error("tensor is not in the writer's plan", {w.dir.string(), std::string(name)});
  const TensorInfo& info = w.tensors[it->second];
  io::OutputFile& file = w.files[w.shard_of[it->second]];
  if (data.size() != info.NumBytes()) {
    throw Error("expected " + std::to_string(info.NumBytes()) + " bytes, found " +
                    std::to_string(data.size()),
                {file.path(), info.name});
  }
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    if (w.finished) throw Error("write after Finish", {file.path(), info.name});
    if (w.state[it->second] != State::kPending) throw Error("tensor written twice", {file.path(), info.name});
    w.state[it->second] = State::kWriting;
  }
  file.WriteAt(info.data_begin, data, info.name);
  std::lock_guard<std::mutex> lock(w.mutex);
  w.state[it->second] = State::kDone;
}

void CheckpointWriter::Finish() {
  Impl& w = *impl_;
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    QF_CHECK(!w.finished);
    for (size_t t = 0; t < w.tensors.size(); ++t) {
      if (w.state[t] != State::kDone) {
        throw Error("tensor was never written", {(w.dir / w.tensors[t].file).string(), w.tensors[t].name});
      }
    }
    w.finished = true;
  }
  for (io::OutputFile& file : w.files) {
    if (w.options.sync_to_disk) file.Sync();
    file.Close();
  }
  if (w.shard_names.size() > 1) {
    // The index as Hugging Face writes it: sorted keys, two-space indent, trailing newline.
    nlohmann::json index;
    index["metadata"]["total_size"] = w.total_bytes;
    index["weight_map"] = nlohmann::json::object();
    for (const TensorInfo& info : w.tensors) index["weight_map"][info.name] = info.file;
    io::WriteSmallFile((w.dir / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  }
}

const std::vector<std::string>& CheckpointWriter::ShardFiles() const { return impl_->shard_names; }
uint64_t CheckpointWriter::TotalBytes() const { return impl_->total_bytes; }

}  // namespace qf
