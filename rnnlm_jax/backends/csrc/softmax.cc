// The softmax layer's cross-entropy, -log softmax(h @ w + b)[y] for each
// row, as an XLA FFI handler for rnnlm_jax/fused.py. The rows run in a few
// blocks per thread; a block walks w in column panels, one BLAS product per
// panel ([R, H] x [H, Vc], both operands and the panel's logits sized for
// the core's cache), and keeps each row's running maximum and sum of
// exponentials (the log-sum-exp taken panel by panel), and the target's
// logit, while the panel's logits are in cache. The result ``e`` receives
// softmax - onehot(y), the logits' gradient for a cotangent of ones: each
// panel's exponentials are written once, in place of its logits, and
// rescaled by the row's final sum in one more pass. (The forward alone is
// left to XLA: inside an evaluation's scan it hoists the weight's bias
// row out of the loop, and its one large GEMM measured as fast as this.)
//
// Shapes: h [N, H], w [H, V], b [V], y [N] (int32); results nll [N] and e
// [N, V]. A target outside [0, V), or an infinite logit, gives a NaN loss.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "blas.h"
#include "fastmath.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using rnnlm::Exp;
using rnnlm::Library;

constexpr int64_t kLanes = 16;
// A panel's operand [H, Vc] and its logits [R, Vc]: each at most this.
constexpr int64_t kPanelBytes = 1 << 20;
// A panel's operand [H, Vc] and its logits [R, Vc]: each at most this.


// One row's running log-sum-exp: the maximum so far, the sum of
// exp(z - max), the target's logit, and whether every logit was finite.
template <typename T>
struct Running {
  T max = -std::numeric_limits<T>::infinity();
  T sum = 0;
  T target = std::numeric_limits<T>::quiet_NaN();
};

// Adds b to one row's panel of logits z [n] (columns c0 .. c0 + n), folds
// it into ``run``, and leaves exp(z - run.max) in z; returns that maximum.
template <typename T>
T Panel(int64_t n, int64_t c0, const T* __restrict b, int32_t y,
        T* __restrict z, Running<T>& run) {
  T lane_max[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) lane_max[l] = run.max;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      T v = z[j + l] + b[j + l];
      z[j + l] = v;
      lane_max[l] = v > lane_max[l] ? v : lane_max[l];
    }
  }
  T m = run.max;
  for (; j < n; ++j) {
    z[j] += b[j];
    m = z[j] > m ? z[j] : m;
  }
  for (int64_t l = 0; l < kLanes; ++l) m = lane_max[l] > m ? lane_max[l] : m;
  if (y >= c0 && y < c0 + n) run.target = z[y - c0];
  // A NaN logit is never the maximum; it reaches the sum. An infinite
  // maximum makes the sum NaN, as the loss should be.
  if (m > run.max) {
    run.sum *= run.max == -std::numeric_limits<T>::infinity()
                   ? T(0)
                   : Exp(run.max - m);
    run.max = m;
  }
  if (std::isinf(m)) {
    run.sum = std::numeric_limits<T>::quiet_NaN();
    m = T(0);
  }
  T lane_sum[kLanes] = {};
  j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      T p = Exp(z[j + l] - m);
      z[j + l] = p;
      lane_sum[l] += p;
    }
  }
  T s = 0;
  for (; j < n; ++j) {
    T p = Exp(z[j] - m);
    z[j] = p;
    s += p;
  }
  for (int64_t l = 0; l < kLanes; ++l) s += lane_sum[l];
  run.sum += s;
  return m;
}

template <ffi::DataType D>
ffi::Error Impl(ffi::ThreadPool pool, ffi::Buffer<D, 2> h,
                ffi::Buffer<D, 2> w, ffi::Buffer<D, 1> b,
                ffi::Buffer<ffi::S32, 1> y, ffi::ResultBuffer<D, 1> nll,
                ffi::ResultBuffer<D, 2> e, int64_t library) {
  using T = ffi::NativeType<D>;
  const Library* lib = rnnlm::Find<T>(library);
  if (lib == nullptr) {
    return ffi::Error::Internal("rnnlm_softmax: no BLAS library at that index");
  }
  const int64_t N = h.dimensions()[0], H = h.dimensions()[1];
  const int64_t V = w.dimensions()[1];
  if (N == 0 || V == 0) return ffi::Error::Success();
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  // Two row blocks per thread; panels of columns sized for the cache.
  const int64_t R = (N + 2 * threads - 1) / (2 * threads);
  const int64_t blocks = (N + R - 1) / R;
  const int64_t sz = sizeof(T);
  int64_t Vc = std::min(kPanelBytes / (std::max<int64_t>(H, 1) * sz),
                        kPanelBytes / (R * sz));
  Vc = std::min(V, std::max<int64_t>(16, Vc / 16 * 16));
  const int64_t panels = (V + Vc - 1) / Vc;
  const T* ph = h.typed_data();
  const T* pw = w.typed_data();
  const T* pb = b.typed_data();
  const int32_t* py = y.typed_data();
  T* pn = nll->typed_data();
  T* pe = e->typed_data();

  // w's panels, packed once per call in phase 0 where the library can.
  auto operands = std::make_shared<
      std::vector<std::unique_ptr<rnnlm::RightOperand<T>>>>(panels);
  auto body = [=](int64_t phase, int64_t k) {
    if (phase == 0) {
      for (int64_t p = k; p < panels && H > 0; p += blocks) {
        const int64_t c0 = p * Vc, n = std::min(V, c0 + Vc) - c0;
        (*operands)[p] = std::make_unique<rnnlm::RightOperand<T>>(
            *lib, R, false, n, H, pw + c0, V);
      }
      return;
    }
    const int64_t r0 = k * R, rows = std::min(N, r0 + R) - r0;
    std::vector<Running<T>> run(rows);
    // Each row's maximum as of each panel, to rescale the saved
    // exponentials by.
    std::vector<T> panel_max(rows * panels);
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t c0 = p * Vc, n = std::min(V, c0 + Vc) - c0;
      T* z = pe + r0 * V + c0;
      if (H == 0) {
        for (int64_t r = 0; r < rows; ++r) std::fill_n(z + r * V, n, T(0));
      } else {
        (*operands)[p]->Multiply(rows, ph + r0 * H, H, z, V);
      }
      for (int64_t r = 0; r < rows; ++r) {
        panel_max[r * panels + p] =
            Panel<T>(n, c0, pb + c0, py[r0 + r], z + r * V, run[r]);
      }
    }
    const T nan = std::numeric_limits<T>::quiet_NaN();
    for (int64_t r = 0; r < rows; ++r) {
      const Running<T>& u = run[r];
      const int32_t t = py[r0 + r];
      const bool valid = t >= 0 && t < V;
      pn[r0 + r] = valid ? u.max + std::log(u.sum) - u.target : nan;
      T* er = pe + (r0 + r) * V;
      const T inv = T(1) / u.sum;
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t c0 = p * Vc, n = std::min(V, c0 + Vc) - c0;
        const T f = Exp(panel_max[r * panels + p] - u.max) * inv;
        for (int64_t j = 0; j < n; ++j) er[c0 + j] *= f;
      }
      if (valid) er[t] -= T(1);
    }
  };
  auto phases =
      std::make_shared<rnnlm::Phases<decltype(body)>>(2, blocks, body);
  rnnlm::RunPhases(pool, std::min(threads, blocks) - 1, phases);
  return ffi::Error::Success();
}

template <ffi::DataType D>
constexpr auto Binding() {
  return ffi::Ffi::Bind()
      .template Ctx<ffi::ThreadPool>()
      .template Arg<ffi::Buffer<D, 2>>()         // h
      .template Arg<ffi::Buffer<D, 2>>()         // w
      .template Arg<ffi::Buffer<D, 1>>()         // b
      .template Arg<ffi::Buffer<ffi::S32, 1>>()  // y
      .template Ret<ffi::Buffer<D, 1>>()         // nll
      .template Ret<ffi::Buffer<D, 2>>()         // e
      .template Attr<int64_t>("library");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmSoftmaxXentF32, Impl<ffi::F32>,
                              Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmSoftmaxXentF64, Impl<ffi::F64>,
                              Binding<ffi::F64>());
