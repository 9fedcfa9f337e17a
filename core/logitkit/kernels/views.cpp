// The fast path's candidate views on CPU, one call each where the torch path (fastpath.py)
// issues tens of small ops: the threshold view (tokens_at_least and CandidateView.at_least), the
// top-k view (chunked_topk, canonical_order and the stand-in of CandidateView.top) and the
// canonical order of a rescaled view. Each gives the torch path's result (tests/test_native.py).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace {

// A float read of these dtypes is exact, so every comparison the kernels make is the torch path's.
void check_readable(const torch::Tensor& tensor, const char* what) {
  const auto dtype = tensor.scalar_type();
  TORCH_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kHalf, what,
              " must be float32, bfloat16 or float16");
}

// The threshold view: every score at or above its row's threshold, found through the shallow
// lanes' maxima, sorted into the canonical order (score descending, token id descending), with
// the sentinel after them.
using Hit = std::pair<float, int64_t>;

// The canonical order every view keeps: score descending, then token id descending, NaN first
// (as torch's descending sort ranks it).
inline bool ranks_before(float a, int64_t a_id, float b, int64_t b_id) {
  const bool a_nan = std::isnan(a), b_nan = std::isnan(b);
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a != b) return a > b;
  return a_id > b_id;
}

inline bool hit_before(const Hit& a, const Hit& b) {
  return ranks_before(a.first, a.second, b.first, b.second);
}

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
        std::sort(found.begin(), found.end(), hit_before);
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
  check_readable(scores, "scores");
  const auto dtype = scores.scalar_type();
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

// The top-k view of every row (``CandidateView.top``): the ``m`` best scores in canonical order,
// found in the ``m`` lanes (``lane_maxima`` at 32 tokens) with the best maxima. With an edit
// (repetition_penalty's new scores, ``maxima`` raised by them) the edit is written into what is
// read, one lane more is ranked, and its maximum bounds every token not read: the view is sure
// only above it, and where the m-th value is not, a stand-in scored at that bound ends the row.
template <typename scalar_t>
std::vector<torch::Tensor> top(const torch::Tensor& scores, const torch::Tensor& maxima,
                               const torch::Tensor& edit_ids, const torch::Tensor& edit_values,
                               int64_t m, int64_t depth) {
  const int64_t batch = scores.size(0), vocab = scores.size(1), lanes = maxima.size(1);
  const int64_t edits = edit_ids.size(1);
  const bool edited = edits > 0;
  const scalar_t* data = scores.data_ptr<scalar_t>();
  const scalar_t* lane_max = maxima.data_ptr<scalar_t>();
  const int64_t* edit_id = edit_ids.data_ptr<int64_t>();
  const scalar_t* edit_value = edit_values.data_ptr<scalar_t>();
  auto values = torch::empty({batch, m}, scores.options());
  auto ids = torch::empty({batch, m}, scores.options().dtype(torch::kInt64));
  auto check_at = torch::empty({batch}, torch::kInt64);
  scalar_t* out = values.data_ptr<scalar_t>();
  int64_t* out_ids = ids.data_ptr<int64_t>();
  int64_t* sure = check_at.data_ptr<int64_t>();
  const float below = -std::numeric_limits<float>::infinity();
  const int64_t ranked = edited ? m + 1 : m;
  const int64_t whole = lanes * depth;
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<Hit> order;
    order.reserve(ranked);
    std::vector<int64_t> place(lanes);
    std::vector<Hit> read;
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* row = data + r * vocab;
      const scalar_t* top_of = lane_max + r * lanes;
      // The ``ranked`` best lanes by one scan with a min-heap: most lanes lose to its least
      // member at a single compare (a selection over every lane cost 4x as much, measured).
      auto worse = [](const Hit& a, const Hit& b) { return a.first > b.first; };
      order.clear();
      for (int64_t j = 0; j < lanes; ++j) {
        const float value = static_cast<float>(top_of[j]);
        if (static_cast<int64_t>(order.size()) < ranked) {
          order.emplace_back(value, j);
          std::push_heap(order.begin(), order.end(), worse);
        } else if (value > order.front().first) {
          std::pop_heap(order.begin(), order.end(), worse);
          order.back() = Hit(value, j);
          std::push_heap(order.begin(), order.end(), worse);
        }
      }
      // Best first: the m best lanes, then (with an edit) the (m+1)-th, whose maximum bounds
      // every token not read.
      std::sort_heap(order.begin(), order.end(), worse);
      const float outside = edited ? order[m].first : below;
      // What is read: lane k's tokens at k * depth + level, then the short tail.
      std::fill(place.begin(), place.end(), int64_t{-1});
      read.assign(m * depth + (vocab - whole), Hit(below, 0));
      for (int64_t k = 0; k < m; ++k) {
        const int64_t lane = order[k].second;
        place[lane] = k;
        for (int64_t level = 0; level < depth; ++level) {
          const int64_t id = lane + level * lanes;
          read[k * depth + level] = Hit(static_cast<float>(row[id]), id);
        }
      }
      for (int64_t id = whole; id < vocab; ++id) {
        read[m * depth + (id - whole)] = Hit(static_cast<float>(row[id]), id);
      }
      for (int64_t e = 0; e < edits; ++e) {
        const int64_t id = edit_id[r * edits + e];
        const float value = static_cast<float>(edit_value[r * edits + e]);
        if (id >= whole) {
          read[m * depth + (id - whole)].first = value;
        } else if (place[id % lanes] >= 0) {
          read[place[id % lanes] * depth + id / lanes].first = value;
        }
      }
      std::partial_sort(read.begin(), read.begin() + m, read.end(), hit_before);
      scalar_t* v = out + r * m;
      int64_t* t = out_ids + r * m;
      int64_t above = m;
      if (edited) {
        above = 0;
        while (above < m && read[above].first > outside) ++above;
      }
      for (int64_t k = 0; k < m; ++k) {
        t[k] = read[k].second;
        // Behind a stand-in for the unread tokens, the rest of the row is cut.
        const float value = k < above ? read[k].first : (k == above ? outside : below);
        v[k] = static_cast<scalar_t>(value);
      }
      const float last = std::max(static_cast<float>(v[m - 1]), outside);
      int64_t count = 0;
      while (count < m && static_cast<float>(v[count]) > last) ++count;
      sure[r] = count;
    }
  });
  return {values, ids, check_at};
}

std::vector<torch::Tensor> top_view(torch::Tensor scores, torch::Tensor maxima, torch::Tensor edit_ids,
                                    torch::Tensor edit_values, int64_t m, int64_t depth) {
  TORCH_CHECK(scores.dim() == 2 && scores.is_contiguous() && scores.device().is_cpu(),
              "scores must be a contiguous CPU [batch, vocab] tensor");
  check_readable(scores, "scores");
  const auto dtype = scores.scalar_type();
  TORCH_CHECK(maxima.scalar_type() == dtype && maxima.is_contiguous() && depth > 0 &&
                  maxima.size(0) == scores.size(0) && maxima.size(1) == scores.size(1) / depth,
              "maxima must be the scores' lane maxima (vocab // depth lanes, the scores' dtype)");
  TORCH_CHECK(m >= 1 && m < maxima.size(1), "m must be at least 1 and below the lane count");
  TORCH_CHECK(edit_ids.scalar_type() == torch::kInt64 && edit_ids.dim() == 2 &&
                  edit_ids.size(0) == scores.size(0) && edit_values.sizes() == edit_ids.sizes() &&
                  edit_values.scalar_type() == dtype,
              "the edit must be [batch, n] int64 ids and [batch, n] values in the scores' dtype");
  auto ids_c = edit_ids.contiguous();
  auto values_c = edit_values.contiguous();
  const int64_t* id = ids_c.data_ptr<int64_t>();
  for (int64_t i = 0; i < ids_c.numel(); ++i) {
    TORCH_CHECK(id[i] >= 0 && id[i] < scores.size(1), "an edited id is outside the vocabulary");
  }
  std::vector<torch::Tensor> result;
  {
    pybind11::gil_scoped_release no_gil;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "top_view", [&] {
      result = top<scalar_t>(scores, maxima, ids_c, values_c, m, depth);
    });
  }
  return result;
}

// Rows already sorted by score (descending) put into canonical order (``ranks_before``). The
// rows are nearly in order (a rescaling only merges neighbours into ties), so a stable insertion
// sort takes one pass; it gives what the torch path's two stable sorts give, bit for bit.
template <typename scalar_t>
std::vector<torch::Tensor> canonical(const torch::Tensor& values, const torch::Tensor& ids) {
  const int64_t batch = values.size(0), width = values.size(1);
  auto out_values = values.clone();
  auto out_ids = ids.clone();
  scalar_t* v = out_values.data_ptr<scalar_t>();
  int64_t* t = out_ids.data_ptr<int64_t>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* value = v + r * width;
      int64_t* id = t + r * width;
      for (int64_t k = 1; k < width; ++k) {
        const scalar_t moving = value[k];
        const int64_t moving_id = id[k];
        const float key = static_cast<float>(moving);
        int64_t at = k;
        while (at > 0 && ranks_before(key, moving_id, static_cast<float>(value[at - 1]), id[at - 1])) {
          value[at] = value[at - 1];
          id[at] = id[at - 1];
          --at;
        }
        value[at] = moving;
        id[at] = moving_id;
      }
    }
  });
  return {out_values, out_ids};
}

std::vector<torch::Tensor> canonical_order(torch::Tensor values, torch::Tensor ids) {
  TORCH_CHECK(values.dim() == 2 && values.device().is_cpu() && ids.sizes() == values.sizes() &&
                  ids.scalar_type() == torch::kInt64,
              "values and ids must be CPU [batch, m] tensors, the ids int64");
  check_readable(values, "values");
  const auto dtype = values.scalar_type();
  auto values_c = values.contiguous();
  auto ids_c = ids.contiguous();
  std::vector<torch::Tensor> result;
  {
    pybind11::gil_scoped_release no_gil;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "canonical_order", [&] {
      result = canonical<scalar_t>(values_c, ids_c);
    });
  }
  return result;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("at_least", &at_least, "The threshold view of every row: (values, ids, counts)");
  m.def("top_view", &top_view, "The top-k view of every row: (values, ids, check_at)");
  m.def("canonical_order", &canonical_order, "Score-sorted rows in canonical order: (values, ids)");
}
