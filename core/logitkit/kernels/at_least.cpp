// The threshold view's build on CPU in one call: every score at or above its row's threshold,
// found through the shallow lanes' maxima, sorted into the canonical order (score descending,
// token id descending), with the sentinel after them. The torch path (fastpath.tokens_at_least
// and CandidateView.at_least) issues some 60 small ops for the same result; this is their sum.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

namespace {

using Hit = std::pair<float, int64_t>;

// A score as the row reads it: divided by the folded divisor in float and rounded back to the
// scores' dtype, which is what torch's ``scores / divisor`` gives (checked by the tests).
template <typename scalar_t>
inline float read(const scalar_t* row, int64_t i, float divisor) {
  if (divisor <= 0.0f) {
    return static_cast<float>(row[i]);
  }
  return static_cast<float>(static_cast<scalar_t>(static_cast<float>(row[i]) / divisor));
}

template <typename scalar_t>
std::vector<torch::Tensor> build(const torch::Tensor& scores, const torch::Tensor& maxima,
                                 const torch::Tensor& search, const torch::Tensor& sentinel,
                                 double divisor_, int64_t depth, int64_t limit) {
  const int64_t batch = scores.size(0), vocab = scores.size(1), lanes = maxima.size(1);
  const float divisor = static_cast<float>(divisor_);
  const scalar_t* data = scores.data_ptr<scalar_t>();
  const scalar_t* lane_max = maxima.data_ptr<scalar_t>();
  const float* bar = search.data_ptr<float>();
  std::vector<std::vector<Hit>> hits(batch);
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* row = data + r * vocab;
      const scalar_t* top = lane_max + r * lanes;
      const float at = bar[r];
      std::vector<Hit>& found = hits[r];
      for (int64_t j = 0; j < lanes; ++j) {
        if (!(static_cast<float>(top[j]) >= at)) continue;  // no token of this lane reaches it
        for (int64_t level = 0; level < depth; ++level) {
          const int64_t id = j + level * lanes;
          const float value = read(row, id, divisor);
          if (value >= at) found.emplace_back(value, id);
        }
      }
      for (int64_t id = lanes * depth; id < vocab; ++id) {  // the short tail, read whole
        const float value = read(row, id, divisor);
        if (value >= at) found.emplace_back(value, id);
      }
      if (static_cast<int64_t>(found.size()) < limit) {
        std::sort(found.begin(), found.end(), [](const Hit& a, const Hit& b) {
          return a.first > b.first || (a.first == b.first && a.second > b.second);
        });
      }
    }
  });
  auto counts = torch::empty({batch}, torch::kInt64);
  int64_t* count = counts.data_ptr<int64_t>();
  int64_t widest = 0;
  for (int64_t r = 0; r < batch; ++r) {
    count[r] = static_cast<int64_t>(hits[r].size());
    if (count[r] > 0 && count[r] < limit) widest = std::max(widest, count[r]);
  }
  const int64_t width = widest + 1;
  auto values = torch::empty({batch, width}, scores.options());
  auto ids = torch::empty({batch, width}, scores.options().dtype(torch::kInt64));
  scalar_t* out = values.data_ptr<scalar_t>();
  int64_t* out_ids = ids.data_ptr<int64_t>();
  const scalar_t* mark = sentinel.data_ptr<scalar_t>();
  const scalar_t below = static_cast<scalar_t>(-std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < batch; ++r) {
    scalar_t* v = out + r * width;
    int64_t* t = out_ids + r * width;
    const std::vector<Hit>& found = hits[r];
    const int64_t n = count[r];
    if (n == 0 || n >= limit) {  // a row that does not fit: left out by the caller
      std::fill(v, v + width, below);
      std::fill(t, t + width, int64_t{0});
      continue;
    }
    int64_t lowest = found[0].second;
    for (int64_t k = 0; k < n; ++k) {
      v[k] = static_cast<scalar_t>(found[k].first);
      t[k] = found[k].second;
      lowest = std::min(lowest, found[k].second);
    }
    // The sentinel and the padding carry a real id of the row, as the torch path's do.
    v[n] = mark[r];
    std::fill(v + n + 1, v + width, below);
    std::fill(t + n, t + width, lowest);
  }
  return {values, ids, counts};
}

std::vector<torch::Tensor> at_least(torch::Tensor scores, torch::Tensor maxima, torch::Tensor search,
                                    torch::Tensor sentinel, double divisor, int64_t depth,
                                    int64_t limit) {
  TORCH_CHECK(scores.dim() == 2 && scores.is_contiguous() && scores.device().is_cpu(),
              "scores must be a contiguous CPU [batch, vocab] tensor");
  const auto dtype = scores.scalar_type();
  TORCH_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kHalf,
              "scores must be float32, bfloat16 or float16 (a float read of them is exact)");
  TORCH_CHECK(maxima.scalar_type() == scores.scalar_type() && maxima.is_contiguous(),
              "maxima must be contiguous, in the scores' dtype");
  TORCH_CHECK(depth > 0 && maxima.size(0) == scores.size(0) && maxima.size(1) == scores.size(1) / depth,
              "maxima must be the scores' lane maxima (vocab // depth lanes)");
  TORCH_CHECK(search.scalar_type() == torch::kFloat32 && search.numel() == scores.size(0),
              "search must be float32 [batch]");
  TORCH_CHECK(sentinel.scalar_type() == scores.scalar_type() && sentinel.numel() == scores.size(0),
              "sentinel must be [batch] in the scores' dtype");
  auto search_c = search.contiguous();
  auto sentinel_c = sentinel.contiguous();
  std::vector<torch::Tensor> result;
  {
    // Other Python threads run while rows are searched, as they do during a torch op.
    pybind11::gil_scoped_release no_gil;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "at_least", [&] {
      result = build<scalar_t>(scores, maxima, search_c, sentinel_c, divisor, depth, limit);
    });
  }
  return result;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("at_least", &at_least, "The threshold view of every row: (values, ids, counts)");
}
