// OpenCheckpointWeights: the model's weights from a safetensors directory (model.safetensors, or
// shards listed by model.safetensors.index.json). A minimal read-only mmap reader kept inside the
// model layer until the io layer's qf::Checkpoint is available; it validates the header length,
// every data offset against the file size, and the dtype names.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "quantforge/error.h"
#include "quantforge/model.h"

namespace qf {
namespace {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) : path_(path.string()) {
    const int fd = ::open(path_.c_str(), O_RDONLY);
    if (fd < 0) throw Error("cannot open safetensors file", {path_});
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw Error("cannot stat safetensors file", {path_});
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      ::close(fd);
      if (p == MAP_FAILED) throw Error("cannot mmap safetensors file", {path_});
      data_ = static_cast<const std::byte*>(p);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

struct Entry {
  DType dtype;
  Shape shape;
  std::span<const std::byte> bytes;
};

class SafetensorsWeights final : public WeightSource {
 public:
  explicit SafetensorsWeights(const std::filesystem::path& dir) : dir_(dir.string()) {
    std::vector<std::filesystem::path> files;
    const auto single = dir / "model.safetensors";
    const auto index = dir / "model.safetensors.index.json";
    if (std::filesystem::exists(single)) {
      files.push_back(single);
    } else if (std::filesystem::exists(index)) {
      std::ifstream in(index);
      nlohmann::json json;
      try {
        json = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("invalid JSON: ") + e.what(), {index.string()});
      }
      std::set<std::string> names;
      for (const auto& [tensor, file] : json.at("weight_map").items()) {
        names.insert(file.get<std::string>());
      }
      for (const auto& name : names) files.push_back(dir / name);
    } else {
      throw Error("no model.safetensors or model.safetensors.index.json", {dir_});
    }
    for (const auto& file : files) Parse(file);
  }

  std::optional<TensorView> Find(std::string_view name) const override {
    const auto it = entries_.find(std::string(name));
    if (it == entries_.end()) return std::nullopt;
    return TensorView{it->second.dtype, it->second.shape, it->second.bytes, it->first};
  }
  std::string Describe() const override { return dir_; }

 private:
  void Parse(const std::filesystem::path& path) {
    files_.push_back(std::make_unique<MappedFile>(path));
    const MappedFile& file = *files_.back();
    if (file.size() < 8) throw Error("file shorter than the 8-byte header length", {file.path()});
    uint64_t header_len = 0;
    std::memcpy(&header_len, file.data(), 8);
    if (header_len > file.size() - 8 || header_len > (100u << 20)) {
      throw Error("header length " + std::to_string(header_len) + " exceeds the file", {file.path(), "", 0});
    }
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(std::string_view(
          reinterpret_cast<const char*>(file.data() + 8), static_cast<size_t>(header_len)));
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("invalid header JSON: ") + e.what(), {file.path(), "", 8});
    }
    const size_t data_begin = 8 + static_cast<size_t>(header_len);
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") continue;
      const auto dtype = ParseDType(info.at("dtype").get<std::string>());
      if (!dtype) throw Error("unknown dtype " + info.at("dtype").dump(), {file.path(), name});
      Entry entry{*dtype, info.at("shape").get<Shape>(), {}};
      const uint64_t begin = info.at("data_offsets")[0].get<uint64_t>();
      const uint64_t end = info.at("data_offsets")[1].get<uint64_t>();
      const uint64_t expected = static_cast<uint64_t>(NumElements(entry.shape)) * DTypeSize(*dtype);
      if (begin > end || end > file.size() - data_begin || end - begin != expected) {
        throw Error("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                        ") do not fit the file or the shape (" + std::to_string(expected) +
                        " bytes)",
                    {file.path(), name});
      }
      entry.bytes = {file.data() + data_begin + begin, static_cast<size_t>(end - begin)};
      entries_.emplace(name, std::move(entry));
    }
  }

  std::string dir_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, Entry> entries_;
};

}  // namespace

std::unique_ptr<WeightSource> OpenCheckpointWeights(const std::filesystem::path& dir) {
  return std::make_unique<SafetensorsWeights>(dir);
}

}  // namespace qf
