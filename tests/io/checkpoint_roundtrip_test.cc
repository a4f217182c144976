// Writer -> reader round trips: every dtype, 0-d scalars, empty tensors, shard splitting and the
// index, byte-exact headers, writer misuse, and the real stories260K checkpoint.
#include <cstring>
#include <map>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "io_test_util.h"
#include "quantforge/checkpoint.h"
#include "src/io/safetensors_format.h"

namespace qf {
namespace {

using testing_io::ExpectError;
using testing_io::ListDir;
using testing_io::ReadFile;
using testing_io::ScratchDir;

constexpr DType kAllDTypes[] = {DType::kF64,    DType::kF32,    DType::kF16, DType::kBF16,
                                DType::kF8E4M3, DType::kF8E5M2, DType::kU8,  DType::kI8,
                                DType::kI16,    DType::kI32,    DType::kI64, DType::kBool};

struct Tensor {
  TensorSpec plan;
  std::vector<std::byte> bytes;
};

// Seeded random bytes of the right length for each plan.
std::vector<Tensor> MakeTensors(const std::vector<TensorSpec>& plans, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Tensor> tensors;
  for (const TensorSpec& plan : plans) {
    Tensor t{plan, std::vector<std::byte>(NumElements(plan.shape) * DTypeSize(plan.dtype))};
    for (std::byte& b : t.bytes) b = static_cast<std::byte>(rng() & 0xff);
    tensors.push_back(std::move(t));
  }
  return tensors;
}

std::vector<TensorSpec> Plans(const std::vector<Tensor>& tensors) {
  std::vector<TensorSpec> plans;
  for (const Tensor& t : tensors) plans.push_back(t.plan);
  return plans;
}

// Writes in reverse declared order (Write accepts any order), then checks every tensor reads
// back with the same dtype, shape and bytes.
void WriteAll(const std::filesystem::path& dir, const std::vector<Tensor>& tensors,
              WriterOptions options = {}) {
  CheckpointWriter writer(dir, Plans(tensors), std::move(options));
  for (auto it = tensors.rbegin(); it != tensors.rend(); ++it) writer.Write(it->plan.name, it->bytes);
  writer.Finish();
}

void ExpectSame(const Checkpoint& checkpoint, const std::vector<Tensor>& tensors) {
  ASSERT_EQ(checkpoint.Tensors().size(), tensors.size());
  for (const Tensor& t : tensors) {
    const TensorInfo* info = checkpoint.Find(t.plan.name);
    ASSERT_NE(info, nullptr) << t.plan.name;
    const TensorView view = checkpoint.View(*info);
    EXPECT_EQ(view.dtype, t.plan.dtype) << t.plan.name;
    EXPECT_EQ(view.shape, t.plan.shape) << t.plan.name;
    ASSERT_EQ(view.data.size(), t.bytes.size()) << t.plan.name;
    for (size_t i = 0; i < t.bytes.size(); ++i) {
      ASSERT_EQ(view.data[i], t.bytes[i]) << t.plan.name << " byte " << i;
    }
  }
}

TEST(CheckpointRoundTrip, AllDTypesScalarsAndEmptyTensors) {
  std::vector<TensorSpec> plans;
  for (DType dtype : kAllDTypes) {
    const std::string name(DTypeName(dtype));
    plans.push_back({"t." + name + ".matrix", dtype, {3, 5}});
    plans.push_back({"t." + name + ".scalar", dtype, {}});
    plans.push_back({"t." + name + ".empty", dtype, {0, 7}});
  }
  const std::vector<Tensor> tensors = MakeTensors(plans, 1);
  ScratchDir dir;
  WriterOptions options;
  options.metadata["producer"] = "quantforge-test";
  WriteAll(dir.path(), tensors, options);
  EXPECT_EQ(ListDir(dir.path()), std::vector<std::string>{"model.safetensors"});

  const Checkpoint checkpoint = Checkpoint::Open(dir.path());
  ExpectSame(checkpoint, tensors);
  EXPECT_EQ(checkpoint.Metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"producer", "quantforge-test"}}));
  EXPECT_EQ(checkpoint.ShardFiles(), std::vector<std::string>{"model.safetensors"});
  uint64_t total = 0;
  for (const Tensor& t : tensors) total += t.bytes.size();
  EXPECT_EQ(checkpoint.TotalBytes(), total);
  // Sorted by name, whatever the declared order.
  for (size_t i = 1; i < checkpoint.Tensors().size(); ++i) {
    EXPECT_LT(checkpoint.Tensors()[i - 1].name, checkpoint.Tensors()[i].name);
  }
  // The same file opens by path, with Directory() its parent.
  const Checkpoint by_file = Checkpoint::Open(dir / "model.safetensors");
  EXPECT_EQ(by_file.Directory(), dir.path());
  ExpectSame(by_file, tensors);
  EXPECT_EQ(checkpoint.Find("absent"), nullptr);
}

// The exact bytes of a small header: reference-style compact JSON, __metadata__ first, sorted
// tensors, space padding to 8 bytes, data in declared order.
TEST(CheckpointRoundTrip, HeaderBytesMatchTheReferenceLayout) {
  ScratchDir dir;
  const std::vector<Tensor> tensors = MakeTensors({{"b", DType::kF32, {2}}, {"a", DType::kU8, {3}}}, 2);
  WriteAll(dir.path(), tensors);
  const std::string file = ReadFile(dir / "model.safetensors");
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const size_t padded = (json.size() + 7) / 8 * 8;
  ASSERT_EQ(file.size(), 8 + padded + 11);
  EXPECT_EQ(static_cast<uint8_t>(file[0]), padded);
  EXPECT_EQ(file.substr(8, json.size()), json);
  EXPECT_EQ(file.substr(8 + json.size(), padded - json.size()), std::string(padded - json.size(), ' '));
  EXPECT_EQ(std::memcmp(file.data() + 8 + padded, tensors[0].bytes.data(), 8), 0);
}

TEST(CheckpointRoundTrip, ShardsFollowTheSizeLimitAndTheIndex) {
  // 40-byte limit: [a 24][b 16] | [c 48 alone] | [d 8][e 0][f 32] -> three shards.
  const std::vector<Tensor> tensors = MakeTensors({{"a", DType::kF32, {6}},
                                                   {"b", DType::kF32, {4}},
                                                   {"c", DType::kI64, {6}},
                                                   {"d", DType::kF64, {}},
                                                   {"e", DType::kF32, {0}},
                                                   {"f", DType::kI32, {8}}},
                                                  3);
  ScratchDir dir;
  WriterOptions options;
  options.max_shard_bytes = 40;
  WriteAll(dir.path(), tensors, options);
  EXPECT_EQ(ListDir(dir.path()),
            (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                      "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors",
                                      "model.safetensors.index.json"}));
  const Checkpoint checkpoint = Checkpoint::Open(dir.path());
  ExpectSame(checkpoint, tensors);
  const std::map<std::string, std::string> expected_shard = {
      {"a", "model-00001-of-00003.safetensors"}, {"b", "model-00001-of-00003.safetensors"},
      {"c", "model-00002-of-00003.safetensors"}, {"d", "model-00003-of-00003.safetensors"},
      {"e", "model-00003-of-00003.safetensors"}, {"f", "model-00003-of-00003.safetensors"}};
  for (const TensorInfo& info : checkpoint.Tensors()) EXPECT_EQ(info.file, expected_shard.at(info.name));
  EXPECT_EQ(checkpoint.TotalBytes(), 24u + 16 + 48 + 8 + 0 + 32);
  const std::string index = ReadFile(dir / "model.safetensors.index.json");
  EXPECT_NE(index.find("\"total_size\": 128"), std::string::npos) << index;
  EXPECT_NE(index.find("\"a\": \"model-00001-of-00003.safetensors\""), std::string::npos) << index;
  // Each shard also opens on its own.
  EXPECT_EQ(Checkpoint::Open(dir / "model-00002-of-00003.safetensors").Tensors().size(), 1u);
}

TEST(CheckpointRoundTrip, EmptyPlanWritesAValidEmptyFile) {
  ScratchDir dir;
  CheckpointWriter writer(dir.path(), {});
  writer.Finish();
  EXPECT_TRUE(Checkpoint::Open(dir.path()).Tensors().empty());
}

TEST(CheckpointRoundTrip, ReleasePagesKeepsViewsReadable) {
  const std::vector<Tensor> tensors = MakeTensors({{"big", DType::kF32, {4096, 4}}, {"s", DType::kU8, {3}}}, 4);
  ScratchDir dir;
  WriteAll(dir.path(), tensors);
  const Checkpoint checkpoint = Checkpoint::Open(dir.path());
  for (const TensorInfo& info : checkpoint.Tensors()) checkpoint.ReleasePages(info);
  ExpectSame(checkpoint, tensors);  // pages come back from the file
}

// Write from several threads at once, in a scrambled order: the files are byte-identical to a
// single-threaded write (offsets are fixed by the plan, never by arrival order).
TEST(CheckpointRoundTrip, ConcurrentWritesGiveIdenticalBytes) {
  std::vector<TensorSpec> plans;
  for (int i = 0; i < 32; ++i) plans.push_back({"layer." + std::to_string(i), DType::kBF16, {i % 7, 33}});
  const std::vector<Tensor> tensors = MakeTensors(plans, 7);
  WriterOptions options;
  options.max_shard_bytes = 1000;
  ScratchDir serial, parallel;
  WriteAll(serial.path(), tensors, options);
  {
    CheckpointWriter writer(parallel.path(), Plans(tensors), options);
    std::vector<std::thread> threads;
    for (size_t worker = 0; worker < 4; ++worker) {
      threads.emplace_back([&, worker] {
        for (size_t i = worker; i < tensors.size(); i += 4) writer.Write(tensors[i].plan.name, tensors[i].bytes);
      });
    }
    for (std::thread& t : threads) t.join();
    writer.Finish();
  }
  const std::vector<std::string> files = ListDir(serial.path());
  ASSERT_GT(files.size(), 2u);
  EXPECT_EQ(ListDir(parallel.path()), files);
  for (const std::string& file : files) {
    EXPECT_EQ(ReadFile(serial / file), ReadFile(parallel / file)) << file;
  }
}

// Resident file-backed memory (RssFile in /proc/self/status, kB) after touching every byte of a
// 16 MiB tensor, and after ReleasePages: the release must return (nearly) all of it.
int64_t RssFileKb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t value = -1;
  while (status >> key) {
    if (key == "RssFile:") {
      status >> value;
      break;
    }
  }
  return value;
}

TEST(CheckpointRoundTrip, ReleasePagesReturnsResidentMemory) {
  const int64_t num_bytes = 16 << 20;
  const std::vector<Tensor> tensors = MakeTensors({{"big", DType::kU8, {num_bytes}}}, 8);
  ScratchDir dir;
  WriteAll(dir.path(), tensors);
  const Checkpoint checkpoint = Checkpoint::Open(dir.path());
  const TensorInfo& info = checkpoint.Tensors()[0];
  const int64_t before = RssFileKb();
  if (before < 0) GTEST_SKIP() << "no RssFile in /proc/self/status";
  uint64_t sum = 0;
  for (std::byte b : checkpoint.View(info).data) sum += static_cast<uint8_t>(b);
  const int64_t touched = RssFileKb();
  checkpoint.ReleasePages(info);
  const int64_t released = RssFileKb();
  EXPECT_GT(sum, 0u);
  EXPECT_GE(touched - before, (num_bytes >> 10) * 9 / 10) << "touching did not map the pages";
  EXPECT_LE(released - before, 64) << "before " << before << " kB, touched " << touched
                                   << " kB, released " << released << " kB";
}

TEST(CheckpointWriterMisuse, RejectsUnknownDuplicateWrongSizeAndMissingTensors) {
  ScratchDir dir;
  const std::vector<Tensor> tensors = MakeTensors({{"a", DType::kF32, {2}}, {"b", DType::kU8, {1}}}, 5);
  CheckpointWriter writer(dir.path(), Plans(tensors));
  ExpectError([&] { writer.Write("zzz", tensors[0].bytes); }, {"'zzz'", "not in the writer's plan"});
  ExpectError([&] { writer.Write("a", tensors[1].bytes); }, {"'a'", "expected 8 bytes, found 1"});
  writer.Write("a", tensors[0].bytes);
  ExpectError([&] { writer.Write("a", tensors[0].bytes); }, {"'a'", "written twice"});
  ExpectError([&] { writer.Finish(); }, {"model.safetensors", "'b'", "never written"});
  ExpectError([] { CheckpointWriter(std::filesystem::path("/nonexistent-qf"), {{"x", DType::kU8, {1}}}); },
              {"/nonexistent-qf/model.safetensors", "cannot create"});
  ExpectError([&] { CheckpointWriter(dir.path(), {{"x", DType::kU8, {1}}, {"x", DType::kU8, {1}}}); },
              {"'x'", "planned twice"});
}

TEST(CheckpointWriterMisuse, CancelStopsTheNextWrite) {
  ScratchDir dir;
  const std::vector<Tensor> tensors = MakeTensors({{"a", DType::kF32, {2}}}, 6);
  CheckpointWriter writer(dir / "", Plans(tensors));
  RequestCancel();
  ExpectError([&] { writer.Write("a", tensors[0].bytes); }, {"interrupted"});
  ResetCancel();
  writer.Write("a", tensors[0].bytes);
  writer.Finish();
}

TEST(Stories260K, ReadsTheRealCheckpoint) {
  const std::filesystem::path dir = std::filesystem::path(QF_SHARED_DIR) / "models/stories260K/hf";
  if (!std::filesystem::exists(dir / "model.safetensors")) {
    GTEST_SKIP() << "stories260K not found at " << dir << " (set QF_SHARED_DIR)";
  }
  const Checkpoint checkpoint = Checkpoint::Open(dir);
  const TensorInfo* embed = checkpoint.Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->shape, (Shape{512, 64}));
  EXPECT_EQ(checkpoint.Find("lm_head.weight"), nullptr);
  int num_layers = 0;
  while (checkpoint.Find("model.layers." + std::to_string(num_layers) + ".self_attn.q_proj.weight")) {
    ++num_layers;
  }
  EXPECT_EQ(num_layers, 5);
  const TensorView view = checkpoint.View(*embed);
  EXPECT_EQ(view.data.size(), 512u * 64 * DTypeSize(embed->dtype));
  uint64_t total = 0;
  for (const TensorInfo& info : checkpoint.Tensors()) total += info.NumBytes();
  EXPECT_EQ(total, checkpoint.TotalBytes());
}

}  // namespace
}  // namespace qf
