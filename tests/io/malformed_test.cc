// Bad input: the committed malformed corpus (tests/data/malformed, one defect per file, expected
// message fragments in EXPECTED.tsv, fuzzer finds included) replayed through the reader, plus
// sharded-checkpoint defects built here: escaping shard paths, index/shard disagreements.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "io_test_util.h"
#include "quantforge/checkpoint.h"
#include "src/io/safetensors_format.h"

namespace qf {
namespace {

namespace fs = std::filesystem;
using testing_io::ExpectError;
using testing_io::SafetensorsBytes;
using testing_io::ScratchDir;
using testing_io::WriteFile;

std::map<std::string, std::vector<std::string>> ReadExpected(const fs::path& file) {
  std::map<std::string, std::vector<std::string>> expected;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name, fragment;
    std::getline(fields, name, '\t');
    while (std::getline(fields, fragment, '\t')) expected[name].push_back(fragment);
  }
  return expected;
}

// Every listed file must fail to open with a qf::Error naming the file and containing each
// expected fragment; unlisted files (fuzzer regressions) must only not crash.
TEST(MalformedCorpus, EveryFileFailsWithItsMessage) {
  const fs::path dir = QF_MALFORMED_DIR;
  const auto expected = ReadExpected(dir / "EXPECTED.tsv");
  ASSERT_GE(expected.size(), 30u) << "corpus missing: run " << (dir / "make_corpus.py");
  size_t replayed = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "EXPECTED.tsv" || name == "README.md" || name == "make_corpus.py") continue;
    ++replayed;
    const auto it = expected.find(name);
    if (it == expected.end()) {
      try {
        Checkpoint::Open(entry.path());
      } catch (const Error&) {
      }
      continue;
    }
    std::vector<std::string> parts = {entry.path().string()};
    parts.insert(parts.end(), it->second.begin(), it->second.end());
    try {
      Checkpoint::Open(entry.path());
      ADD_FAILURE() << name << " opened without error";
    } catch (const Error& e) {
      for (const std::string& part : parts) {
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
            << name << ": message: " << e.what() << "\nmissing: " << part;
      }
    }
  }
  EXPECT_GE(replayed, expected.size());
}

// The parser alone on a prefix shorter than the header it announces (the fuzz entry point's
// contract) and on valid edge cases the reference accepts.
TEST(ParseSafetensorsHeader, EdgeCases) {
  const std::string empty_ok = SafetensorsBytes("{}");
  EXPECT_TRUE(io::ParseSafetensorsHeader(std::as_bytes(std::span(empty_ok)), empty_ok.size(), "f")
                  .tensors.empty());
  // Padding spaces after the JSON and two empty tensors at the same offset are valid.
  const std::string padded = SafetensorsBytes(
      R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"BOOL","shape":[],"data_offsets":[0,1]},)"
      R"("c":{"dtype":"I8","shape":[2,0],"data_offsets":[1,1]}}   )",
      "x");
  const io::ParsedHeader header =
      io::ParseSafetensorsHeader(std::as_bytes(std::span(padded)), padded.size(), "f");
  ASSERT_EQ(header.tensors.size(), 3u);
  EXPECT_EQ(header.tensors[1].data_begin, header.data_start);
  EXPECT_EQ(header.tensors[1].NumBytes(), 1u);
  ExpectError([&] { io::ParseSafetensorsHeader(std::as_bytes(std::span(padded)).first(20), padded.size(), "f"); },
              {"not fully readable"});
}

// Errors about an entry point at its key in the file (8-byte length + position in the JSON).
TEST(ParseSafetensorsHeader, EntryErrorsNameTheEntryOffset) {
  const std::string json =
      R"({"__metadata__":{"k":"v"}, "a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},  "b":{"dtype":"X"}})";
  const std::string file = SafetensorsBytes(json, "z");
  const std::string expected = "tensor 'b': byte " + std::to_string(8 + json.find("\"b\"")) + ": ";
  ExpectError([&] { io::ParseSafetensorsHeader(std::as_bytes(std::span(file)), file.size(), "f"); },
              {expected, "lacks key 'shape'"});
  const std::string bad_metadata = SafetensorsBytes(R"({ "__metadata__":{"k":1}})");
  ExpectError([&] { io::ParseSafetensorsHeader(std::as_bytes(std::span(bad_metadata)), bad_metadata.size(), "f"); },
              {"byte 10: __metadata__ value of 'k'"});
}

// A sharded checkpoint with two shards, written by our writer, then edited by `edit`.
fs::path MakeSharded(const ScratchDir& scratch) {
  const fs::path dir = scratch / "ckpt";
  fs::create_directory(dir);
  WriterOptions options;
  options.max_shard_bytes = 4;
  CheckpointWriter writer(dir, {{"a", DType::kF32, {1}}, {"b", DType::kF32, {1}}}, options);
  const std::byte four[4] = {};
  writer.Write("a", four);
  writer.Write("b", four);
  writer.Finish();
  return dir;
}

void WriteIndex(const fs::path& dir, const std::string& weight_map_json) {
  WriteFile(dir / "model.safetensors.index.json",
            R"({"metadata":{"total_size":8},"weight_map":)" + weight_map_json + "}");
}

TEST(MalformedIndex, ShardPathsMustStayInside) {
  ScratchDir scratch;
  const fs::path dir = MakeSharded(scratch);
  ASSERT_NO_THROW(Checkpoint::Open(dir));
  const std::string index = (dir / "model.safetensors.index.json").string();

  WriteIndex(dir, R"({"a":"../model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "tensor 'a'", "leaves the checkpoint directory"});
  WriteIndex(dir, R"({"a":"/etc/passwd","b":"model-00002-of-00002.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "'/etc/passwd' is absolute"});
  WriteIndex(dir, R"({"a":"./model-00001-of-00002.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "'.' component"});

  // A symlink inside the directory that points outside it.
  WriteFile(scratch / "outside.safetensors", testing_io::ReadFile(dir / "model-00001-of-00002.safetensors"));
  fs::create_symlink("../outside.safetensors", dir / "link.safetensors");
  WriteIndex(dir, R"({"a":"link.safetensors","b":"model-00002-of-00002.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "outside the checkpoint directory"});
  // A symlink that stays inside is fine.
  fs::create_symlink("model-00001-of-00002.safetensors", dir / "inside.safetensors");
  WriteIndex(dir, R"({"a":"inside.safetensors","b":"model-00002-of-00002.safetensors"})");
  EXPECT_EQ(Checkpoint::Open(dir).Tensors().size(), 2u);
}

TEST(MalformedIndex, IndexAndShardsMustAgree) {
  ScratchDir scratch;
  const fs::path dir = MakeSharded(scratch);
  const std::string index = (dir / "model.safetensors.index.json").string();
  {
    // A shard holding a and b, with only a listed.
    CheckpointWriter writer(scratch.path(), {{"a", DType::kU8, {1}}, {"b", DType::kU8, {1}}});
    const std::byte one[1] = {};
    writer.Write("a", one);
    writer.Write("b", one);
    writer.Finish();
    fs::rename(scratch / "model.safetensors", dir / "both.safetensors");
  }
  WriteIndex(dir, R"({"a":"both.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "tensor 'b'", "in shard 'both.safetensors' but not listed"});
  // Listed in shard 1 while it lives in shard 2.
  WriteIndex(dir, R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
                  R"("c":"model-00002-of-00002.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "tensor 'b'", "but it is in"});
  WriteIndex(dir, R"({"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors",)"
                  R"("zz":"model-00002-of-00002.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "tensor 'zz'", "does not contain it"});
  WriteIndex(dir, R"({"a":"model-00001-of-00002.safetensors","b":"model-00009-of-00009.safetensors"})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "'model-00009-of-00009.safetensors'", "cannot be opened"});
  WriteIndex(dir, R"(["a"])");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "weight_map must be an object"});
  WriteIndex(dir, R"({"a":1})");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "tensor 'a'", "must be a shard file name string"});
  WriteFile(dir / "model.safetensors.index.json", "{bad");
  ExpectError([&] { Checkpoint::Open(dir); }, {index, "index is not valid JSON"});
  // A shard may have any plain name: the index decides (a copy of shard 1 under another name).
  fs::copy_file(dir / "model-00001-of-00002.safetensors", dir / "copy.safetensors");
  WriteIndex(dir, R"({"a":"copy.safetensors","b":"model-00002-of-00002.safetensors"})");
  ASSERT_NO_THROW(Checkpoint::Open(dir));
}

TEST(MalformedDirectory, NoOrAmbiguousShards) {
  ScratchDir scratch;
  ExpectError([&] { Checkpoint::Open(scratch.path()); }, {scratch.path().string(), "no .safetensors file"});
  ExpectError([&] { Checkpoint::Open(scratch / "missing"); }, {"no such file or directory"});
  WriteFile(scratch / "x.safetensors", SafetensorsBytes("{}"));
  EXPECT_EQ(Checkpoint::Open(scratch.path()).ShardFiles(), std::vector<std::string>{"x.safetensors"});
  WriteFile(scratch / "y.safetensors", SafetensorsBytes("{}"));
  ExpectError([&] { Checkpoint::Open(scratch.path()); },
              {"several .safetensors files but no model.safetensors.index.json: x.safetensors y.safetensors"});
}

// The reader opens read-only: a file without write permission opens, and its bytes and
// modification time do not change.
TEST(ReadOnlyInput, OpensWithoutWritePermissionAndChangesNothing) {
  ScratchDir scratch;
  const fs::path file = scratch / "model.safetensors";
  WriteFile(file, SafetensorsBytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "xy"));
  fs::permissions(file, fs::perms::owner_read);
  const auto before = fs::last_write_time(file);
  {
    const Checkpoint checkpoint = Checkpoint::Open(scratch.path());
    const TensorView view = checkpoint.View(checkpoint.Tensors()[0]);
    EXPECT_EQ(static_cast<char>(view.data[1]), 'y');
    checkpoint.ReleasePages(checkpoint.Tensors()[0]);
  }
  EXPECT_EQ(fs::last_write_time(file), before);
}

}  // namespace
}  // namespace qf
