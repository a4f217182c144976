// The double-precision reference Llama forward of the whole-model gradient tests.
#include "tests/grad/reference_llama.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "quantforge/error.h"
#include "src/model/rope.h"

namespace qf::grad_test {

std::optional<TensorView> InMemoryWeights::Find(std::string_view name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) return std::nullopt;
  return MakeView(std::span<const float>(it->second.second), it->second.first, it->first);
}

void InMemoryWeights::Add(const std::string& name, Shape shape, uint32_t seed, float mean,
                          float std) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, std);
  std::vector<float> values(static_cast<size_t>(NumElements(shape)));
  for (float& v : values) v = dist(rng);
  tensors_[name] = {std::move(shape), std::move(values)};
}

const std::vector<float>& InMemoryWeights::Values(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("test weights lack " + name);
  return it->second.second;
}

ModelConfig TinyConfig(int64_t layers, bool tied, bool biases, int64_t sliding_window) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  c.max_position_embeddings = 160;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = tied;
  c.qkv_bias = c.o_bias = c.mlp_bias = biases;
  c.sliding_window = sliding_window;
  return c;
}

InMemoryWeights TinyWeights(const ModelConfig& c, uint32_t seed) {
  InMemoryWeights w;
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, inter = c.intermediate_size;
  w.Add("model.embed_tokens.weight", {c.vocab_size, h}, seed++, 0.0f, 1.0f);
  if (!c.tie_word_embeddings) w.Add("lm_head.weight", {c.vocab_size, h}, seed++, 0.0f, 0.3f);
  w.Add("model.norm.weight", {h}, seed++, 1.0f, 0.2f);
  const auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
    w.Add(name + ".weight", {out, in}, seed++, 0.0f, 0.3f);
    if (bias) w.Add(name + ".bias", {out}, seed++, 0.0f, 0.1f);
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.Add(p + "input_layernorm.weight", {h}, seed++, 1.0f, 0.2f);
    w.Add(p + "post_attention_layernorm.weight", {h}, seed++, 1.0f, 0.2f);
    linear(p + "self_attn.q_proj", q, h, c.qkv_bias);
    linear(p + "self_attn.k_proj", kv, h, c.qkv_bias);
    linear(p + "self_attn.v_proj", kv, h, c.qkv_bias);
    linear(p + "self_attn.o_proj", h, q, c.o_bias);
    linear(p + "mlp.gate_proj", inter, h, c.mlp_bias);
    linear(p + "mlp.up_proj", inter, h, c.mlp_bias);
    linear(p + "mlp.down_proj", h, inter, c.mlp_bias);
  }
  return w;
}

namespace {

using Matrix = std::vector<double>;  // [rows, cols] row-major

struct Forward {
  const ModelConfig& c;
  const InMemoryWeights& w;
  const OutputOffset* offset;
  ReferenceResult* result;
  int64_t rows;

  Matrix Linear(const std::string& module, const Matrix& x, int64_t in, int64_t out,
                bool has_bias) const {
    result->inputs[module] = x;
    const std::vector<float>& weight = w.Values(module + ".weight");
    const std::vector<float> no_bias(static_cast<size_t>(out), 0.0f);
    const std::vector<float>& bias = has_bias ? w.Values(module + ".bias") : no_bias;
    Matrix y(static_cast<size_t>(rows * out));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        double sum = bias[o];
        for (int64_t i = 0; i < in; ++i) sum += x[r * in + i] * weight[o * in + i];
        y[r * out + o] = sum;
      }
    }
    if (offset != nullptr && offset->module == module) {
      y[offset->row * out + offset->col] += offset->delta;
    }
    return y;
  }

  Matrix Norm(const std::string& name, const Matrix& x) const {
    const int64_t h = c.hidden_size;
    const std::vector<float>& weight = w.Values(name);
    Matrix y(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double ms = 0.0;
      for (int64_t i = 0; i < h; ++i) ms += x[r * h + i] * x[r * h + i];
      const double inv = 1.0 / std::sqrt(ms / h + c.rms_norm_eps);
      for (int64_t i = 0; i < h; ++i) y[r * h + i] = weight[i] * x[r * h + i] * inv;
    }
    return y;
  }
};

void Rope(Matrix& m, int64_t width, int64_t head_dim, const std::vector<int32_t>& positions,
          const std::vector<double>& inv_freq) {
  const int64_t half = head_dim / 2;
  for (size_t r = 0; r < positions.size(); ++r) {
    for (int64_t head = 0; head < width / head_dim; ++head) {
      double* v = m.data() + r * width + head * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double a = positions[r] * inv_freq[i];
        const double x1 = v[i], x2 = v[i + half];
        v[i] = x1 * std::cos(a) - x2 * std::sin(a);
        v[i + half] = x2 * std::cos(a) + x1 * std::sin(a);
      }
    }
  }
}

}  // namespace

ReferenceResult ReferenceForward(const ModelConfig& c, const InMemoryWeights& w,
                                 const std::vector<std::vector<int32_t>>& sequences,
                                 const OutputOffset* offset) {
  ReferenceResult result;
  std::vector<int32_t> ids, positions;
  std::vector<int64_t> begin = {0};
  for (const auto& seq : sequences) {
    ids.insert(ids.end(), seq.begin(), seq.end());
    for (size_t i = 0; i < seq.size(); ++i) positions.push_back(static_cast<int32_t>(i));
    begin.push_back(static_cast<int64_t>(ids.size()));
  }
  const int64_t rows = static_cast<int64_t>(ids.size());
  const int64_t h = c.hidden_size, d = c.head_dim, inter = c.intermediate_size;
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  const std::vector<double> inv_freq =
      model::RopeInverseFrequencies(d, c.rope_theta, c.rope_scaling);
  const Forward f{c, w, offset, &result, rows};

  Matrix x(static_cast<size_t>(rows * h));
  const std::vector<float>& embed = w.Values("model.embed_tokens.weight");
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < h; ++i) x[r * h + i] = embed[ids[r] * h + i];
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const Matrix n1 = f.Norm(p + "input_layernorm.weight", x);
    Matrix q = f.Linear(p + "self_attn.q_proj", n1, h, heads * d, c.qkv_bias);
    Matrix k = f.Linear(p + "self_attn.k_proj", n1, h, kv_heads * d, c.qkv_bias);
    const Matrix v = f.Linear(p + "self_attn.v_proj", n1, h, kv_heads * d, c.qkv_bias);
    Rope(q, heads * d, d, positions, inv_freq);
    Rope(k, kv_heads * d, d, positions, inv_freq);
    Matrix ctx(static_cast<size_t>(rows * heads * d));
    for (size_t s = 0; s + 1 < begin.size(); ++s) {
      for (int64_t hd = 0; hd < heads; ++hd) {
        const int64_t g = hd / (heads / kv_heads);
        for (int64_t i = begin[s]; i < begin[s + 1]; ++i) {
          const int64_t first = c.sliding_window > 0
                                    ? std::max<int64_t>(begin[s], i - c.sliding_window + 1)
                                    : begin[s];
          std::vector<double> score;
          double m = -1e300, z = 0.0;
          for (int64_t j = first; j <= i; ++j) {
            double dot = 0.0;
            for (int64_t e = 0; e < d; ++e)
              dot += q[i * heads * d + hd * d + e] * k[j * kv_heads * d + g * d + e];
            score.push_back(dot / std::sqrt(static_cast<double>(d)));
            m = std::max(m, score.back());
          }
          for (const double sc : score) z += std::exp(sc - m);
          for (int64_t j = first; j <= i; ++j) {
            const double pj = std::exp(score[j - first] - m) / z;
            for (int64_t e = 0; e < d; ++e) {
              ctx[i * heads * d + hd * d + e] += pj * v[j * kv_heads * d + g * d + e];
            }
          }
        }
      }
    }
    const Matrix o = f.Linear(p + "self_attn.o_proj", ctx, heads * d, h, c.o_bias);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    const Matrix n2 = f.Norm(p + "post_attention_layernorm.weight", x);
    const Matrix gate = f.Linear(p + "mlp.gate_proj", n2, h, inter, c.mlp_bias);
    const Matrix up = f.Linear(p + "mlp.up_proj", n2, h, inter, c.mlp_bias);
    Matrix act(gate.size());
    for (size_t i = 0; i < act.size(); ++i) act[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
    const Matrix down = f.Linear(p + "mlp.down_proj", act, inter, h, c.mlp_bias);
    for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
  }
  const Matrix final_hidden = f.Norm("model.norm.weight", x);
  const std::vector<float>& head =
      w.Values(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  for (size_t s = 0; s + 1 < begin.size(); ++s) {
    for (int64_t r = begin[s]; r + 1 < begin[s + 1]; ++r) {
      std::vector<double> logits(static_cast<size_t>(c.vocab_size));
      double m = -1e300, z = 0.0;
      for (int64_t t = 0; t < c.vocab_size; ++t) {
        for (int64_t i = 0; i < h; ++i) logits[t] += final_hidden[r * h + i] * head[t * h + i];
        m = std::max(m, logits[t]);
      }
      for (const double lg : logits) z += std::exp(lg - m);
      result.loss += m + std::log(z) - logits[ids[r + 1]];
    }
  }
  return result;
}

}  // namespace qf::grad_test
