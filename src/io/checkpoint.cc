// qf::Checkpoint: opens a single safetensors file or a (sharded) Hugging Face checkpoint
// directory, validates every header (read with pread) and the index, and serves zero-copy views
// into read-only per-tensor mappings made on demand.
#include <algorithm>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <unordered_map>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "src/io/file_io.h"
#include "src/io/safetensors_format.h"

namespace qf {

namespace fs = std::filesystem;

struct Checkpoint::Impl {
  fs::path directory;
  std::vector<std::string> shard_files;
  std::vector<std::unique_ptr<io::InputFile>> shards;   // parallel to shard_files
  std::unordered_map<std::string, size_t> shard_index;  // file name -> position in shards
  std::vector<TensorInfo> tensors;                      // sorted by name
  std::vector<size_t> shard_of;                         // parallel to tensors
  std::map<std::string, std::string> metadata;
  uint64_t total_bytes = 0;
  // One mapping per viewed, not yet released tensor (parallel to tensors): address space and
  // resident memory follow the tensors in flight, not the checkpoint size, so the process runs
  // under an address-space limit (prlimit --as) far below the checkpoint.
  std::mutex mapping_mutex;
  std::vector<io::MappedRange> mappings;

  // Position of `info` in tensors: by address for our own entries, by name for a copy.
  size_t IndexOf(const TensorInfo& info) const {
    if (!tensors.empty() && &info >= tensors.data() && &info < tensors.data() + tensors.size()) {
      return static_cast<size_t>(&info - tensors.data());
    }
    const auto it = std::lower_bound(
        tensors.begin(), tensors.end(), info.name,
        [](const TensorInfo& t, const std::string& name) { return t.name < name; });
    QF_CHECK(it != tensors.end() && it->name == info.name && it->file == info.file &&
             it->data_begin == info.data_begin && it->data_end == info.data_end);
    return static_cast<size_t>(it - tensors.begin());
  }
};

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
// An index is a name -> file map; 100 MB is far beyond any real one (a 1T-parameter MoE has
// ~10 MB) and bounds what a hostile file can make us allocate.
constexpr uintmax_t kMaxIndexBytes = 100'000'000;

std::string ReadIndexFile(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Error("cannot read index: " + ec.message(), {path.string()});
  if (size > kMaxIndexBytes) {
    throw Error("index is " + std::to_string(size) + " bytes, over the cap of " +
                    std::to_string(kMaxIndexBytes),
                {path.string()});
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw Error("cannot read index", {path.string()});
  return text.str();
}

// The first 8 + N bytes of a shard (N its header length), or fewer when N is over the cap or
// past the end: the parser then reports which.
std::vector<std::byte> ReadHeaderBytes(const io::InputFile& file) {
  const uint64_t prefix = std::min<uint64_t>(file.size(), io::kHeaderLengthBytes);
  std::vector<std::byte> bytes = file.Read(0, prefix);
  if (prefix < io::kHeaderLengthBytes) return bytes;
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_bytes > io::kMaxHeaderBytes || header_bytes > file.size() - prefix) return bytes;
  return file.Read(0, prefix + header_bytes);
}

// Resolves symlinks and checks the shard stays inside the checkpoint directory.
void CheckInsideDirectory(const fs::path& directory, const std::string& shard,
                          const std::string& index_path) {
  std::error_code ec;
  const fs::path root = fs::canonical(directory, ec);
  const fs::path resolved = fs::canonical(directory / shard, ec);
  if (ec) throw Error("shard '" + shard + "' listed in the index cannot be opened: " + ec.message(),
                      {index_path});
  const auto [root_end, unused] =
      std::mismatch(root.begin(), root.end(), resolved.begin(), resolved.end());
  if (root_end != root.end()) {
    throw Error("shard '" + shard + "' resolves to " + resolved.string() +
                    ", outside the checkpoint directory " + root.string(),
                {index_path});
  }
}

// Which files make up the checkpoint at `path`; fills directory and shard names, and the index
// map (empty when not sharded).
struct Located {
  fs::path directory;
  std::vector<std::string> shard_files;
};

void LocateShards(const fs::path& path, Located& impl,
                  std::map<std::string, std::string>& shard_of) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw Error("no such file or directory", {path.string()});
  if (fs::is_regular_file(status)) {
    impl.directory = path.has_parent_path() ? path.parent_path() : fs::path(".");
    impl.shard_files = {path.filename().string()};
    return;
  }
  if (!fs::is_directory(status)) throw Error("neither a file nor a directory", {path.string()});
  impl.directory = path;
  if (fs::exists(path / kIndexName)) {
    const std::string index_path = (path / kIndexName).string();
    shard_of = io::ParseShardIndex(ReadIndexFile(path / kIndexName), index_path);
    std::set<std::string> unique;
    for (const auto& [tensor, shard] : shard_of) unique.insert(shard);
    for (const std::string& shard : unique) CheckInsideDirectory(path, shard, index_path);
    impl.shard_files.assign(unique.begin(), unique.end());
    return;
  }
  if (fs::exists(path / kSingleName)) {
    impl.shard_files = {kSingleName};
    return;
  }
  std::vector<std::string> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
    if (entry.path().extension() == ".safetensors") found.push_back(entry.path().filename().string());
  }
  std::sort(found.begin(), found.end());
  if (found.size() != 1) {
    std::string names;
    for (const std::string& name : found) names += " " + name;
    throw Error(found.empty()
                    ? std::string("no .safetensors file (expected ") + kSingleName + " or " + kIndexName + ")"
                    : "several .safetensors files but no " + std::string(kIndexName) + ":" + names,
                {path.string()});
  }
  impl.shard_files = found;
}

}  // namespace

Checkpoint Checkpoint::Open(const fs::path& path) {
  auto impl = std::make_unique<Impl>();
  std::map<std::string, std::string> shard_of;
  Located located;
  LocateShards(path, located, shard_of);
  impl->directory = std::move(located.directory);
  impl->shard_files = std::move(located.shard_files);
  const std::string index_path = (impl->directory / kIndexName).string();

  std::map<std::string, std::string> seen_in;  // tensor -> shard, for duplicates across shards
  for (size_t s = 0; s < impl->shard_files.size(); ++s) {
    const std::string& shard = impl->shard_files[s];
    auto file = std::make_unique<io::InputFile>((impl->directory / shard).string());
    io::ParsedHeader header =
        io::ParseSafetensorsHeader(ReadHeaderBytes(*file), file->size(), file->path());
    if (s == 0) impl->metadata = header.metadata;
    for (TensorInfo& info : header.tensors) {
      if (!shard_of.empty()) {
        const auto listed = shard_of.find(info.name);
        if (listed == shard_of.end()) {
          throw Error("tensor is in shard '" + shard + "' but not listed in the index",
                      {index_path, info.name});
        }
        if (listed->second != shard) {
          throw Error("index lists the tensor in '" + listed->second + "' but it is in '" + shard + "'",
                      {index_path, info.name});
        }
      }
      const auto [it, inserted] = seen_in.emplace(info.name, shard);
      if (!inserted) {
        throw Error("tensor appears in both '" + it->second + "' and '" + shard + "'",
                    {impl->directory.string(), info.name});
      }
      info.file = shard;
      impl->total_bytes += info.NumBytes();
      impl->tensors.push_back(std::move(info));
    }
    impl->shard_index[shard] = s;
    impl->shards.push_back(std::move(file));
  }
  for (const auto& [tensor, shard] : shard_of) {
    if (!seen_in.contains(tensor)) {
      throw Error("index lists the tensor in '" + shard + "' but that shard does not contain it",
                  {index_path, tensor});
    }
  }
  std::sort(impl->tensors.begin(), impl->tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  for (const TensorInfo& info : impl->tensors) impl->shard_of.push_back(impl->shard_index.at(info.file));
  impl->mappings.resize(impl->tensors.size());
  return Checkpoint(std::move(impl));
}

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

const std::vector<TensorInfo>& Checkpoint::Tensors() const { return impl_->tensors; }

const TensorInfo* Checkpoint::Find(std::string_view name) const {
  const auto it = std::lower_bound(
      impl_->tensors.begin(), impl_->tensors.end(), name,
      [](const TensorInfo& info, std::string_view key) { return info.name < key; });
  return it != impl_->tensors.end() && it->name == name ? &*it : nullptr;
}

TensorView Checkpoint::View(const TensorInfo& info) const {
  const size_t index = impl_->IndexOf(info);
  std::lock_guard<std::mutex> lock(impl_->mapping_mutex);
  io::MappedRange& mapping = impl_->mappings[index];
  if (!mapping.mapped() && info.NumBytes() > 0) {
    mapping = io::MappedRange(*impl_->shards[impl_->shard_of[index]], info.data_begin,
                              info.data_end, info.name);
  }
  return TensorView{info.dtype, info.shape, mapping.bytes(), info.name};
}

void Checkpoint::ReleasePages(const TensorInfo& info) const {
  const size_t index = impl_->IndexOf(info);
  io::MappedRange released;  // unmapped outside the lock
  std::lock_guard<std::mutex> lock(impl_->mapping_mutex);
  released = std::move(impl_->mappings[index]);
}

const fs::path& Checkpoint::Directory() const { return impl_->directory; }
const std::vector<std::string>& Checkpoint::ShardFiles() const { return impl_->shard_files; }
std::map<std::string, std::string> Checkpoint::Metadata() const { return impl_->metadata; }
uint64_t Checkpoint::TotalBytes() const { return impl_->total_bytes; }

}  // namespace qf
