// A whole LSTM layer over time as two XLA FFI handlers, forward and
// backward, for the batch-major recurrence of rnnlm_jax/fused.py. Each time
// step is one BLAS product h @ w_hh per block of hidden units plus that
// block's gate arithmetic, run while the block's gates are still in cache;
// the blocks of a step run on XLA's intra-op thread pool (blas.h: Phases).
//
// Shapes: T steps, B streams, H units, G = 4H gates in PyTorch's order
// (i, f, g, o). xw [T, B, G] is the input projection with its bias;
// reset [T, B] zeroes a stream's carry before step t consumes it.
// Forward: h [T, B, H], the final carry (h_T, c_T), and where the result
// ``acts`` has T rows (a differentiated call), each step's gate activations
// [T, B, G] and cell state [T, B, H] for the backward.
// Backward: d xw [T, B, G] (the gates' pre-activation gradient, which is
// also d(h @ w_hh)), d h_0 and d c_0; the weight's gradient is one product
// over all steps, done by the caller.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using rnnlm::Call;
using rnnlm::Library;

// exp(x) for float: Cody-Waite reduction and a degree-6 polynomial
// (relative error about 2e-7), branch-free so that loops over it
// vectorise; NaN stays NaN, and the range is clamped where float ends.
inline float Exp(float x) {
  float xc = x < -87.33f ? -87.33f : (x > 88.37f ? 88.37f : x);
  xc = xc == xc ? xc : 0.0f;
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: rounds to an integer.
  float n = (xc * 1.44269504088896341f + kMagic) - kMagic;
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float y = p * scale;
  return x == x ? y : x;
}

inline double Exp(double x) { return std::exp(x); }

template <typename T>
inline T Sigmoid(T x) {
  return T(1) / (T(1) + Exp(-x));
}

template <typename T>
inline T Tanh(T x) {
  T e = Exp(T(-2) * std::fabs(x));
  return std::copysign((T(1) - e) / (T(1) + e), x);
}

// One step's gate arithmetic for n units of one stream: xw's gate blocks
// are H apart, those of h @ w_hh (gq) are given one by one; c is updated in
// place; with kSave, the activations (H apart) and c are kept.
template <typename T, bool kSave>
void GateStep(int64_t n, int64_t H, const T* __restrict x, const T* gq[4],
              T* __restrict c, T* __restrict h, T* __restrict act,
              T* __restrict c_save) {
  const T* __restrict g0 = gq[0];
  const T* __restrict g1 = gq[1];
  const T* __restrict g2 = gq[2];
  const T* __restrict g3 = gq[3];
  for (int64_t j = 0; j < n; ++j) {
    T ig = Sigmoid(x[j] + g0[j]);
    T fg = Sigmoid(x[H + j] + g1[j]);
    T gg = Tanh(x[2 * H + j] + g2[j]);
    T og = Sigmoid(x[3 * H + j] + g3[j]);
    T cn = fg * c[j] + ig * gg;
    c[j] = cn;
    h[j] = og * Tanh(cn);
    if constexpr (kSave) {
      act[j] = ig;
      act[H + j] = fg;
      act[2 * H + j] = gg;
      act[3 * H + j] = og;
      c_save[j] = cn;
    }
  }
}

// One step's gate gradients for n units of one stream, from the saved
// activations (H apart) and cell states: d (the pre-activations'
// gradients, H apart) and dc, the cell state's gradient, carried in place.
template <typename T>
void GateGrads(int64_t n, int64_t H, const T* __restrict act,
               const T* __restrict c, const T* __restrict c_prev,
               const T* __restrict dh, const T* __restrict dh_carry,
               T* __restrict dc, T* __restrict d) {
  for (int64_t j = 0; j < n; ++j) {
    T ig = act[j], fg = act[H + j], gg = act[2 * H + j], og = act[3 * H + j];
    T tc = Tanh(c[j]);
    T dht = dh[j] + dh_carry[j];
    T dcj = dc[j] + dht * og * (T(1) - tc * tc);
    d[j] = dcj * gg * ig * (T(1) - ig);
    d[H + j] = dcj * c_prev[j] * fg * (T(1) - fg);
    d[2 * H + j] = dcj * ig * (T(1) - gg * gg);
    d[3 * H + j] = dht * tc * og * (T(1) - og);
    dc[j] = dcj * fg;
  }
}

// How the H units are split into blocks: about one per thread of the pool,
// each a multiple of 16 units long; one block where a step's product is
// under twice the library's smallest block.
struct Split {
  int64_t width, blocks;

  Split(const Library& lib, int64_t threads, int64_t b, int64_t h) {
    int64_t parts = std::max<int64_t>(1, threads);
    if (2 * b * h * 4 * h < lib.min_block_flops * 2) parts = 1;
    width = std::max<int64_t>(1, std::min(h, ((h + parts - 1) / parts + 15) /
                                                 16 * 16));
    blocks = h == 0 ? 0 : (h + width - 1) / width;
  }
};

template <ffi::DataType D>
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<D, 3> xw,
                   ffi::Buffer<D, 2> w_hh, ffi::Buffer<D, 2> h0,
                   ffi::Buffer<D, 2> c0, ffi::Buffer<ffi::PRED, 2> reset,
                   ffi::ResultBuffer<D, 3> h_out, ffi::ResultBuffer<D, 2> h_T,
                   ffi::ResultBuffer<D, 2> c_T, ffi::ResultBuffer<D, 3> acts,
                   ffi::ResultBuffer<D, 3> c_out, bool reverse,
                   int64_t library) {
  using T = ffi::NativeType<D>;
  const Library* lib = rnnlm::Find<T>(library);
  if (lib == nullptr) {
    return ffi::Error::Internal("rnnlm_lstm: no BLAS library at that index");
  }
  auto dims = xw.dimensions();
  const int64_t steps = dims[0], B = dims[1], G = dims[2], H = G / 4;
  const bool save = acts->dimensions()[0] == steps && steps > 0;
  std::memcpy(h_T->typed_data(), h0.typed_data(), sizeof(T) * B * H);
  std::memcpy(c_T->typed_data(), c0.typed_data(), sizeof(T) * B * H);
  if (steps == 0 || B == 0 || H == 0) return ffi::Error::Success();

  Split split(*lib, pool.num_threads(), B, H);
  const int64_t width = split.width;
  // The weight's columns regrouped by block of units: block k holds its
  // units' four gate columns side by side, [H, 4 * width_k] row-major.
  auto w_blocks = std::make_shared<std::vector<T>>(H * G);
  auto operands = std::make_shared<
      std::vector<std::unique_ptr<rnnlm::RightOperand<T>>>>(split.blocks);
  auto gates = std::make_shared<std::vector<T>>(B * G);
  auto zeros = std::make_shared<std::vector<T>>(H, T(0));
  const T* x = xw.typed_data();
  const T* w = w_hh.typed_data();
  const bool* r = reset.typed_data();
  T* h = h_out->typed_data();
  T* c = c_T->typed_data();  // The cell state, updated in place.
  T* a = save ? acts->typed_data() : nullptr;
  T* cs = save ? c_out->typed_data() : nullptr;
  const T* h_init = h0.typed_data();

  auto body = [=](int64_t phase, int64_t k) {
    const int64_t j0 = k * width, n = std::min(H, j0 + width) - j0;
    T* wk = w_blocks->data() + H * 4 * j0;
    if (phase == 0) {  // Regroup the weight, and pack it.
      for (int64_t row = 0; row < H; ++row) {
        for (int64_t q = 0; q < 4; ++q) {
          std::memcpy(wk + row * 4 * n + q * n, w + row * G + q * H + j0,
                      sizeof(T) * n);
        }
      }
      (*operands)[k] = std::make_unique<rnnlm::RightOperand<T>>(
          *lib, B, false, 4 * n, H, wk, 4 * n);
      return;
    }
    const int64_t s = phase - 1, t = reverse ? steps - 1 - s : s;
    const int64_t tp = reverse ? t + 1 : t - 1;
    const T* h_prev = s == 0 ? h_init : h + tp * B * H;
    T* gk = gates->data() + B * 4 * j0;
    (*operands)[k]->Multiply(B, h_prev, H, gk, 4 * n);
    for (int64_t b = 0; b < B; ++b) {
      const bool cut = r[t * B + b];
      const T* xr = x + (t * B + b) * G + j0;
      const T* gr = cut ? zeros->data() : gk + b * 4 * n;
      const T* gq[4] = {gr, gr + n, gr + 2 * n, gr + 3 * n};
      if (cut) gq[1] = gq[2] = gq[3] = gr;
      T* cr = c + b * H + j0;
      T* hr = h + (t * B + b) * H + j0;
      if (cut) std::fill(cr, cr + n, T(0));
      if (save) {
        GateStep<T, true>(n, H, xr, gq, cr, hr, a + (t * B + b) * G + j0,
                          cs + (t * B + b) * H + j0);
      } else {
        GateStep<T, false>(n, H, xr, gq, cr, hr, nullptr, nullptr);
      }
    }
  };
  auto phases = std::make_shared<rnnlm::Phases<decltype(body)>>(
      steps + 1, split.blocks, body);
  rnnlm::RunPhases(pool, split.blocks - 1, phases);
  const int64_t last = reverse ? 0 : steps - 1;
  std::memcpy(h_T->typed_data(), h + last * B * H, sizeof(T) * B * H);
  return ffi::Error::Success();
}

template <ffi::DataType D>
ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<D, 2> w_hh,
                    ffi::Buffer<D, 2> c0, ffi::Buffer<ffi::PRED, 2> reset,
                    ffi::Buffer<D, 3> acts, ffi::Buffer<D, 3> c_out,
                    ffi::Buffer<D, 3> dh, ffi::Buffer<D, 2> dh_T,
                    ffi::Buffer<D, 2> dc_T, ffi::ResultBuffer<D, 3> dxw,
                    ffi::ResultBuffer<D, 2> dh0, ffi::ResultBuffer<D, 2> dc0,
                    bool reverse, int64_t library) {
  using T = ffi::NativeType<D>;
  const Library* lib = rnnlm::Find<T>(library);
  if (lib == nullptr) {
    return ffi::Error::Internal("rnnlm_lstm: no BLAS library at that index");
  }
  auto dims = acts.dimensions();
  const int64_t steps = dims[0], B = dims[1], G = dims[2], H = G / 4;
  // d h_0 and d c_0 carry the gradient from step to step, in place.
  T* dhn = dh0->typed_data();
  T* dcn = dc0->typed_data();
  std::memcpy(dhn, dh_T.typed_data(), sizeof(T) * B * H);
  std::memcpy(dcn, dc_T.typed_data(), sizeof(T) * B * H);
  if (steps == 0 || B == 0 || H == 0) return ffi::Error::Success();

  Split split(*lib, pool.num_threads(), B, H);
  const int64_t width = split.width;
  auto zeros = std::make_shared<std::vector<T>>(H, T(0));
  const T* w = w_hh.typed_data();
  const T* c_init = c0.typed_data();
  const bool* r = reset.typed_data();
  const T* a = acts.typed_data();
  const T* cs = c_out.typed_data();
  const T* dhs = dh.typed_data();
  T* d = dxw->typed_data();

  auto operands = std::make_shared<
      std::vector<std::unique_ptr<rnnlm::RightOperand<T>>>>(split.blocks);
  // Phase 0 packs w_hh^T's column blocks; then two phases a step, last step
  // first: the gate gradients of a block of units, then d h_prev = d gates
  // @ w_hh^T for a block of columns.
  auto body = [=](int64_t phase, int64_t k) {
    const int64_t j0 = k * width, n = std::min(H, j0 + width) - j0;
    if (phase == 0) {
      (*operands)[k] = std::make_unique<rnnlm::RightOperand<T>>(
          *lib, B, true, n, G, w + j0 * G, G);
      return;
    }
    const int64_t s = steps - 1 - (phase - 1) / 2;
    const int64_t t = reverse ? steps - 1 - s : s;
    const int64_t tp = reverse ? t + 1 : t - 1;
    if (phase % 2 == 0) {
      (*operands)[k]->Multiply(B, d + t * B * G, G, dhn + j0, H);
      for (int64_t b = 0; b < B; ++b) {
        if (r[t * B + b]) std::fill(dhn + b * H + j0, dhn + b * H + j0 + n, T(0));
      }
      return;
    }
    for (int64_t b = 0; b < B; ++b) {
      const bool cut = r[t * B + b];
      const T* c_prev =
          cut ? zeros->data()
              : (s == 0 ? c_init + b * H : cs + (tp * B + b) * H) + j0;
      T* dcc = dcn + b * H + j0;
      GateGrads<T>(n, H, a + (t * B + b) * G + j0, cs + (t * B + b) * H + j0,
                   c_prev, dhs + (t * B + b) * H + j0, dhn + b * H + j0, dcc,
                   d + (t * B + b) * G + j0);
      if (cut) std::fill(dcc, dcc + n, T(0));
    }
  };
  auto phases = std::make_shared<rnnlm::Phases<decltype(body)>>(
      2 * steps + 1, split.blocks, body);
  rnnlm::RunPhases(pool, split.blocks - 1, phases);
  return ffi::Error::Success();
}

template <ffi::DataType D>
constexpr auto ForwardBinding() {
  return ffi::Ffi::Bind()
      .template Ctx<ffi::ThreadPool>()
      .template Arg<ffi::Buffer<D, 3>>()         // xw
      .template Arg<ffi::Buffer<D, 2>>()         // w_hh
      .template Arg<ffi::Buffer<D, 2>>()         // h0
      .template Arg<ffi::Buffer<D, 2>>()         // c0
      .template Arg<ffi::Buffer<ffi::PRED, 2>>()  // reset
      .template Ret<ffi::Buffer<D, 3>>()         // h
      .template Ret<ffi::Buffer<D, 2>>()         // h_T
      .template Ret<ffi::Buffer<D, 2>>()         // c_T
      .template Ret<ffi::Buffer<D, 3>>()         // acts
      .template Ret<ffi::Buffer<D, 3>>()         // c
      .template Attr<bool>("reverse")
      .template Attr<int64_t>("library");
}

template <ffi::DataType D>
constexpr auto BackwardBinding() {
  return ffi::Ffi::Bind()
      .template Ctx<ffi::ThreadPool>()
      .template Arg<ffi::Buffer<D, 2>>()         // w_hh
      .template Arg<ffi::Buffer<D, 2>>()         // c0
      .template Arg<ffi::Buffer<ffi::PRED, 2>>()  // reset
      .template Arg<ffi::Buffer<D, 3>>()         // acts
      .template Arg<ffi::Buffer<D, 3>>()         // c
      .template Arg<ffi::Buffer<D, 3>>()         // dh
      .template Arg<ffi::Buffer<D, 2>>()         // dh_T
      .template Arg<ffi::Buffer<D, 2>>()         // dc_T
      .template Ret<ffi::Buffer<D, 3>>()         // dxw
      .template Ret<ffi::Buffer<D, 2>>()         // dh0
      .template Ret<ffi::Buffer<D, 2>>()         // dc0
      .template Attr<bool>("reverse")
      .template Attr<int64_t>("library");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmLstmFwdF32, Forward<ffi::F32>,
                              ForwardBinding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmLstmFwdF64, Forward<ffi::F64>,
                              ForwardBinding<ffi::F64>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmLstmBwdF32, Backward<ffi::F32>,
                              BackwardBinding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlmLstmBwdF64, Backward<ffi::F64>,
                              BackwardBinding<ffi::F64>());
