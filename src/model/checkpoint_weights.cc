// OpenCheckpointWeights: a WeightSource over the io layer's qf::Checkpoint (validated, zero-copy
// mmap of single-file or sharded safetensors). Views stay valid while the source lives, until
// Release(name) unmaps that tensor.
#include "quantforge/checkpoint.h"
#include "quantforge/model.h"

namespace qf {
namespace {

class CheckpointWeights final : public WeightSource {
 public:
  explicit CheckpointWeights(const std::filesystem::path& dir)
      : checkpoint_(Checkpoint::Open(dir)), description_(dir.string()) {}

  std::optional<TensorView> Find(std::string_view name) const override {
    const TensorInfo* info = checkpoint_.Find(name);
    if (info == nullptr) return std::nullopt;
    return checkpoint_.View(*info);
  }
  std::string Describe() const override { return description_; }
  void Release(std::string_view name) const override {
    const TensorInfo* info = checkpoint_.Find(name);
    if (info != nullptr) checkpoint_.ReleasePages(*info);
  }

 private:
  Checkpoint checkpoint_;
  std::string description_;
};

}  // namespace

std::unique_ptr<WeightSource> OpenCheckpointWeights(const std::filesystem::path& dir) {
  return std::make_unique<CheckpointWeights>(dir);
}

}  // namespace qf
