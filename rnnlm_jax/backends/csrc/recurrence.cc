// A whole recurrent layer over time, LSTM, GRU or Elman, as two XLA FFI handlers
// each, forward and backward, for the batch-major recurrence of
// rnnlm_jax/fused.py. Each time step is one product h @ w_hh per block of
// hidden units (a BLAS library's, or with ``library`` = kBuiltIn the
// built-in packed product of blas.h) plus that block's gate arithmetic, run
// while the block's gates are still in cache; the blocks of a step run on
// XLA's intra-op thread pool (blas.h: Phases).
//
// Shapes: T steps, B streams, H units, G = gates * H in PyTorch's order
// (LSTM i, f, g, o; GRU r, z, n; Elman one). xw [T, B, G] is the input projection with
// its bias; reset [T, B] zeroes a stream's carry before step t consumes it;
// bias is the GRU's b_hn [H] (added to the n block of h @ w_hh), empty for
// the LSTM; c0, c_T and the saved cell states are the LSTM's, empty ([0,
// ...]) for the GRU.
// Forward: h [T, B, H], the final carry, and where the result ``acts`` has
// T rows (a differentiated call), each step's activations [T, B, 4H] (LSTM
// i, f, g, o; GRU r, z, n and the n block of h @ w_hh + b_hn; none for an
// Elman cell, whose backward reads h) and the LSTM's cell states [T, B, H]
// for the backward.
// Backward: d xw [T, B, G] (the pre-activations' gradient), d hw [T, B, G]
// (the GRU's gradient of h @ w_hh + bias; the LSTM's is d xw, and this
// result is empty), d h_0 and d c_0; the weight's gradient is one product
// over all steps, done by the caller.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "fastmath.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using rnnlm::Library;

using rnnlm::Exp;
using rnnlm::Sigmoid;
using rnnlm::Tanh;

// The LSTM's step for n units of one stream: xw's gate blocks are H apart,
// those of h @ w_hh gs apart (0 where the carry was cut: g is zeros); c is
// updated in place; with kSave, the activations (H apart) and c are kept.
struct Lstm {
  static constexpr int64_t kGates = 4;
  static constexpr int64_t kActs = 4;     // Saved activations per unit.
  static constexpr bool kCell = true;     // A cell state beside h.
  static constexpr bool kDirect = false;  // h_prev reaches h' outside w_hh.

  template <typename T, bool kSave>
  static void Step(int64_t n, int64_t H, const T* __restrict x,
                   const T* __restrict g, int64_t gs, const T* __restrict,
                   const T* __restrict, T* __restrict c, T* __restrict h,
                   T* __restrict act, T* __restrict c_save) {
    for (int64_t j = 0; j < n; ++j) {
      T ig = Sigmoid(x[j] + g[j]);
      T fg = Sigmoid(x[H + j] + g[gs + j]);
      T gg = Tanh(x[2 * H + j] + g[2 * gs + j]);
      T og = Sigmoid(x[3 * H + j] + g[3 * gs + j]);
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

  // The gate gradients d (H apart) from the saved activations and cell
  // states; ``carry`` is the cell state's gradient, carried in place.
  template <typename T>
  static void Grads(int64_t n, int64_t H, const T* __restrict act,
                    const T* __restrict c, const T* __restrict c_prev,
                    const T* __restrict, const T* __restrict dh,
                    const T* __restrict dh_carry, T* __restrict carry,
                    T* __restrict d, T* __restrict) {
    for (int64_t j = 0; j < n; ++j) {
      T ig = act[j], fg = act[H + j], gg = act[2 * H + j], og = act[3 * H + j];
      T tc = Tanh(c[j]);
      T dht = dh[j] + dh_carry[j];
      T dcj = carry[j] + dht * og * (T(1) - tc * tc);
      d[j] = dcj * gg * ig * (T(1) - ig);
      d[H + j] = dcj * c_prev[j] * fg * (T(1) - fg);
      d[2 * H + j] = dcj * ig * (T(1) - gg * gg);
      d[3 * H + j] = dht * tc * og * (T(1) - og);
      carry[j] = dcj * fg;
    }
  }
};

// The GRU's step: r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r *
// (h_n + b_hn)), h' = (1 - z) n + z h; h_prev is zeros where cut.
struct Gru {
  static constexpr int64_t kGates = 3;
  static constexpr int64_t kActs = 4;
  static constexpr bool kCell = false;
  static constexpr bool kDirect = true;

  template <typename T, bool kSave>
  static void Step(int64_t n, int64_t H, const T* __restrict x,
                   const T* __restrict g, int64_t gs,
                   const T* __restrict h_prev, const T* __restrict b_hn,
                   T* __restrict, T* __restrict h, T* __restrict act,
                   T* __restrict) {
    for (int64_t j = 0; j < n; ++j) {
      T rg = Sigmoid(x[j] + g[j]);
      T zg = Sigmoid(x[H + j] + g[gs + j]);
      T hn = g[2 * gs + j] + b_hn[j];
      T ng = Tanh(x[2 * H + j] + rg * hn);
      h[j] = (T(1) - zg) * ng + zg * h_prev[j];
      if constexpr (kSave) {
        act[j] = rg;
        act[H + j] = zg;
        act[2 * H + j] = ng;
        act[3 * H + j] = hn;
      }
    }
  }

  // d (d xw) and dhw (d of h @ w_hh + b_hn), H apart; ``carry`` receives
  // h_prev's gradient outside w_hh (z dh').
  template <typename T>
  static void Grads(int64_t n, int64_t H, const T* __restrict act,
                    const T* __restrict, const T* __restrict,
                    const T* __restrict h_prev, const T* __restrict dh,
                    const T* __restrict dh_carry, T* __restrict carry,
                    T* __restrict d, T* __restrict dhw) {
    for (int64_t j = 0; j < n; ++j) {
      T rg = act[j], zg = act[H + j], ng = act[2 * H + j], hn = act[3 * H + j];
      T dht = dh[j] + dh_carry[j];
      T dn = dht * (T(1) - zg) * (T(1) - ng * ng);
      T dr = dn * hn * rg * (T(1) - rg);
      T dz = dht * (h_prev[j] - ng) * zg * (T(1) - zg);
      d[j] = dr;
      d[H + j] = dz;
      d[2 * H + j] = dn;
      dhw[j] = dr;
      dhw[H + j] = dz;
      dhw[2 * H + j] = dn * rg;
      carry[j] = dht * zg;
    }
  }
};

// Elman cells, h' = f(x + h @ w_hh), for an activation f whose derivative is
// a function of its value: tanh, the logistic sigmoid, relu.
struct TanhFn {
  template <typename T>
  static T F(T x) { return Tanh(x); }
  template <typename T>
  static T D(T y) { return T(1) - y * y; }
};

struct SigmoidFn {
  template <typename T>
  static T F(T x) { return Sigmoid(x); }
  template <typename T>
  static T D(T y) { return y * (T(1) - y); }
};

struct ReluFn {
  template <typename T>
  static T F(T x) { return x < T(0) ? T(0) : x; }  // NaN stays NaN.
  template <typename T>
  static T D(T y) { return y > T(0) ? T(1) : T(0); }
};

template <typename Fn>
struct Elman {
  static constexpr int64_t kGates = 1;
  static constexpr int64_t kActs = 0;  // The backward reads h' itself.
  static constexpr bool kCell = false;
  static constexpr bool kDirect = false;

  template <typename T, bool kSave>
  static void Step(int64_t n, int64_t, const T* __restrict x,
                   const T* __restrict g, int64_t, const T* __restrict,
                   const T* __restrict, T* __restrict, T* __restrict h,
                   T* __restrict, T* __restrict) {
    for (int64_t j = 0; j < n; ++j) h[j] = Fn::F(x[j] + g[j]);
  }

  // d = (dh + dh_carry) f'(.), from h' (``act``).
  template <typename T>
  static void Grads(int64_t n, int64_t, const T* __restrict act,
                    const T* __restrict, const T* __restrict,
                    const T* __restrict, const T* __restrict dh,
                    const T* __restrict dh_carry, T* __restrict,
                    T* __restrict d, T* __restrict) {
    for (int64_t j = 0; j < n; ++j) {
      d[j] = (dh[j] + dh_carry[j]) * Fn::D(act[j]);
    }
  }
};

// How the H units are split into blocks: about one per thread of the pool,
// each a multiple of 16 units long; one block where a step's product is
// under twice the library's smallest block.
struct Split {
  int64_t width, blocks;

  Split(const Library& lib, int64_t threads, int64_t b, int64_t h,
        int64_t gates) {
    int64_t parts = std::max<int64_t>(1, threads);
    if (2 * b * h * gates * h < lib.min_block_flops * 2) parts = 1;
    width = std::max<int64_t>(1, std::min(h, ((h + parts - 1) / parts + 15) /
                                                 16 * 16));
    blocks = h == 0 ? 0 : (h + width - 1) / width;
  }
};

template <typename Cell, ffi::DataType D>
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<D, 3> xw,
                   ffi::Buffer<D, 2> w_hh, ffi::Buffer<D, 1> bias,
                   ffi::Buffer<D, 2> h0, ffi::Buffer<D, 2> c0,
                   ffi::Buffer<ffi::PRED, 2> reset,
                   ffi::ResultBuffer<D, 3> h_out, ffi::ResultBuffer<D, 2> h_T,
                   ffi::ResultBuffer<D, 2> c_T, ffi::ResultBuffer<D, 3> acts,
                   ffi::ResultBuffer<D, 3> c_out, bool reverse,
                   int64_t library) {
  using T = ffi::NativeType<D>;
  constexpr int64_t kG = Cell::kGates;
  const Library* lib = library == rnnlm::kBuiltIn ? &rnnlm::BuiltIn()
                                                  : rnnlm::Find<T>(library);
  if (lib == nullptr) {
    return ffi::Error::Internal("rnnlm_rnn: no BLAS library at that index");
  }
  auto dims = xw.dimensions();
  const int64_t steps = dims[0], B = dims[1], G = dims[2], H = G / kG;
  const bool save = acts->dimensions()[0] == steps && steps > 0;
  std::memcpy(h_T->typed_data(), h0.typed_data(), sizeof(T) * B * H);
  if (Cell::kCell) {
    std::memcpy(c_T->typed_data(), c0.typed_data(), sizeof(T) * B * H);
  }
  if (steps == 0 || B == 0 || H == 0) return ffi::Error::Success();

  Split split(*lib, pool.num_threads(), B, H, kG);
  const int64_t width = split.width;
  // The weight's columns regrouped by block of units: block k holds its
  // units' gate columns side by side, [H, kG * width_k] row-major; left
  // uninitialised: phase 0 writes all of it, so the calling thread does not
  // zero-fill it first.
  std::shared_ptr<T[]> w_blocks(new T[H * G]);
  auto operands = std::make_shared<
      std::vector<std::unique_ptr<rnnlm::RightOperand<T>>>>(split.blocks);
  auto gates = std::make_shared<std::vector<T>>(B * G);
  auto zeros = std::make_shared<std::vector<T>>(kG * H, T(0));
  const T* x = xw.typed_data();
  const T* w = w_hh.typed_data();
  const T* b_hn = bias.typed_data();
  const bool* r = reset.typed_data();
  T* h = h_out->typed_data();
  T* c = Cell::kCell ? c_T->typed_data() : nullptr;  // Updated in place.
  T* a = save ? acts->typed_data() : nullptr;
  T* cs = save && Cell::kCell ? c_out->typed_data() : nullptr;
  const T* h_init = h0.typed_data();

  auto body = [=](int64_t phase, int64_t k) {
    const int64_t j0 = k * width, n = std::min(H, j0 + width) - j0;
    T* wk = w_blocks.get() + H * kG * j0;
    if (phase == 0) {  // Regroup the weight, and pack it.
      for (int64_t row = 0; row < H; ++row) {
        for (int64_t q = 0; q < kG; ++q) {
          std::memcpy(wk + row * kG * n + q * n, w + row * G + q * H + j0,
                      sizeof(T) * n);
        }
      }
      (*operands)[k] = std::make_unique<rnnlm::RightOperand<T>>(
          *lib, B, false, kG * n, H, wk, kG * n);
      return;
    }
    const int64_t s = phase - 1, t = reverse ? steps - 1 - s : s;
    const int64_t tp = reverse ? t + 1 : t - 1;
    const T* h_prev = s == 0 ? h_init : h + tp * B * H;
    T* gk = gates->data() + B * kG * j0;
    (*operands)[k]->Multiply(B, h_prev, H, gk, kG * n);
    for (int64_t b = 0; b < B; ++b) {
      const bool cut = r[t * B + b];
      const T* g = cut ? zeros->data() : gk + b * kG * n;
      const T* hp = cut ? zeros->data() : h_prev + b * H + j0;
      T* cr = Cell::kCell ? c + b * H + j0 : nullptr;
      if (cut && Cell::kCell) std::fill(cr, cr + n, T(0));
      const T* xr = x + (t * B + b) * G + j0;
      T* hr = h + (t * B + b) * H + j0;
      const T* br = Cell::kCell ? nullptr : b_hn + j0;
      if (save) {
        Cell::template Step<T, true>(
            n, H, xr, g, cut ? 0 : n, hp, br, cr, hr,
            Cell::kActs ? a + (t * B + b) * Cell::kActs * H + j0 : nullptr,
            Cell::kCell ? cs + (t * B + b) * H + j0 : nullptr);
      } else {
        Cell::template Step<T, false>(n, H, xr, g, cut ? 0 : n, hp, br, cr, hr,
                                      nullptr, nullptr);
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

template <typename Cell, ffi::DataType D>
ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<D, 2> w_hh,
                    ffi::Buffer<D, 2> h0, ffi::Buffer<D, 2> c0,
                    ffi::Buffer<ffi::PRED, 2> reset, ffi::Buffer<D, 3> acts,
                    ffi::Buffer<D, 3> h_all, ffi::Buffer<D, 3> c_all,
                    ffi::Buffer<D, 3> dh, ffi::Buffer<D, 2> dh_T,
                    ffi::Buffer<D, 2> dc_T, ffi::ResultBuffer<D, 3> dxw,
                    ffi::ResultBuffer<D, 3> dhw_out,
                    ffi::ResultBuffer<D, 2> dh0, ffi::ResultBuffer<D, 2> dc0,
                    bool reverse, int64_t library) {
  using T = ffi::NativeType<D>;
  constexpr int64_t kG = Cell::kGates;
  const Library* lib = library == rnnlm::kBuiltIn ? &rnnlm::BuiltIn()
                                                  : rnnlm::Find<T>(library);
  if (lib == nullptr) {
    return ffi::Error::Internal("rnnlm_rnn: no BLAS library at that index");
  }
  auto dims = dxw->dimensions();
  const int64_t steps = dims[0], B = dims[1], G = dims[2], H = G / kG;
  // d h_0 carries the gradient from step to step, in place, and so does
  // d c_0 (the LSTM's); the GRU's direct term z dh' waits in ``direct``.
  T* dhn = dh0->typed_data();
  std::memcpy(dhn, dh_T.typed_data(), sizeof(T) * B * H);
  auto direct = std::make_shared<std::vector<T>>(Cell::kCell ? 0 : B * H);
  T* carry = Cell::kCell ? dc0->typed_data() : direct->data();
  if (Cell::kCell) std::memcpy(carry, dc_T.typed_data(), sizeof(T) * B * H);
  if (steps == 0 || B == 0 || H == 0) return ffi::Error::Success();

  Split split(*lib, pool.num_threads(), B, H, kG);
  const int64_t width = split.width;
  auto zeros = std::make_shared<std::vector<T>>(H, T(0));
  auto operands = std::make_shared<
      std::vector<std::unique_ptr<rnnlm::RightOperand<T>>>>(split.blocks);
  const T* w = w_hh.typed_data();
  const T* h_init = h0.typed_data();
  const T* c_init = c0.typed_data();
  const bool* r = reset.typed_data();
  const T* a = acts.typed_data();
  const T* hs = h_all.typed_data();
  const T* cs = c_all.typed_data();
  const T* dhs = dh.typed_data();
  T* d = dxw->typed_data();
  T* dhw = Cell::kDirect ? dhw_out->typed_data() : d;  // What meets w_hh.

  // Phase 0 packs w_hh^T's column blocks; then two phases a step, last step
  // first: the gate gradients of a block of units, then d h_prev = d hw @
  // w_hh^T (+ the direct term) for a block of columns.
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
      (*operands)[k]->Multiply(B, dhw + t * B * G, G, dhn + j0, H);
      for (int64_t b = 0; b < B; ++b) {
        T* row = dhn + b * H + j0;
        if (r[t * B + b]) {
          std::fill(row, row + n, T(0));
        } else if (Cell::kDirect) {
          const T* add = carry + b * H + j0;
          for (int64_t j = 0; j < n; ++j) row[j] += add[j];
        }
      }
      return;
    }
    for (int64_t b = 0; b < B; ++b) {
      const bool cut = r[t * B + b];
      const int64_t prev = s == 0 ? b * H : (tp * B + b) * H;
      const T* c_prev = nullptr;
      const T* h_prev = nullptr;
      if (Cell::kCell) {
        c_prev = cut ? zeros->data() : (s == 0 ? c_init : cs) + prev + j0;
      } else {
        h_prev = cut ? zeros->data() : (s == 0 ? h_init : hs) + prev + j0;
      }
      T* cr = carry + b * H + j0;
      // The saved activations, or an Elman cell's h'.
      const T* act = Cell::kActs ? a + (t * B + b) * Cell::kActs * H + j0
                                 : hs + (t * B + b) * H + j0;
      Cell::template Grads<T>(
          n, H, act,
          Cell::kCell ? cs + (t * B + b) * H + j0 : nullptr, c_prev, h_prev,
          dhs + (t * B + b) * H + j0, dhn + b * H + j0, cr,
          d + (t * B + b) * G + j0,
          Cell::kDirect ? dhw + (t * B + b) * G + j0 : nullptr);
      if (cut && Cell::kCell) std::fill(cr, cr + n, T(0));
    }
  };
  auto phases = std::make_shared<rnnlm::Phases<decltype(body)>>(
      2 * steps + 1, split.blocks, body);
  rnnlm::RunPhases(pool, split.blocks - 1, phases);
  return ffi::Error::Success();
}

template <typename Cell, ffi::DataType D>
constexpr auto ForwardBinding() {
  return ffi::Ffi::Bind()
      .template Ctx<ffi::ThreadPool>()
      .template Arg<ffi::Buffer<D, 3>>()          // xw
      .template Arg<ffi::Buffer<D, 2>>()          // w_hh
      .template Arg<ffi::Buffer<D, 1>>()          // bias
      .template Arg<ffi::Buffer<D, 2>>()          // h0
      .template Arg<ffi::Buffer<D, 2>>()          // c0
      .template Arg<ffi::Buffer<ffi::PRED, 2>>()  // reset
      .template Ret<ffi::Buffer<D, 3>>()          // h
      .template Ret<ffi::Buffer<D, 2>>()          // h_T
      .template Ret<ffi::Buffer<D, 2>>()          // c_T
      .template Ret<ffi::Buffer<D, 3>>()          // acts
      .template Ret<ffi::Buffer<D, 3>>()          // c
      .template Attr<bool>("reverse")
      .template Attr<int64_t>("library");
}

template <typename Cell, ffi::DataType D>
constexpr auto BackwardBinding() {
  return ffi::Ffi::Bind()
      .template Ctx<ffi::ThreadPool>()
      .template Arg<ffi::Buffer<D, 2>>()          // w_hh
      .template Arg<ffi::Buffer<D, 2>>()          // h0
      .template Arg<ffi::Buffer<D, 2>>()          // c0
      .template Arg<ffi::Buffer<ffi::PRED, 2>>()  // reset
      .template Arg<ffi::Buffer<D, 3>>()          // acts
      .template Arg<ffi::Buffer<D, 3>>()          // h
      .template Arg<ffi::Buffer<D, 3>>()          // c
      .template Arg<ffi::Buffer<D, 3>>()          // dh
      .template Arg<ffi::Buffer<D, 2>>()          // dh_T
      .template Arg<ffi::Buffer<D, 2>>()          // dc_T
      .template Ret<ffi::Buffer<D, 3>>()          // dxw
      .template Ret<ffi::Buffer<D, 3>>()          // dhw
      .template Ret<ffi::Buffer<D, 2>>()          // dh0
      .template Ret<ffi::Buffer<D, 2>>()          // dc0
      .template Attr<bool>("reverse")
      .template Attr<int64_t>("library");
}

}  // namespace

#define RNNLM_RECURRENCE(NAME, CELL, TYPE)                                  \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(Rnnlm##NAME##Fwd##TYPE,                    \
                                (Forward<CELL, ffi::TYPE>),                \
                                (ForwardBinding<CELL, ffi::TYPE>()));      \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(Rnnlm##NAME##Bwd##TYPE,                    \
                                (Backward<CELL, ffi::TYPE>),               \
                                (BackwardBinding<CELL, ffi::TYPE>()));

RNNLM_RECURRENCE(Lstm, Lstm, F32)
RNNLM_RECURRENCE(Lstm, Lstm, F64)
RNNLM_RECURRENCE(Gru, Gru, F32)
RNNLM_RECURRENCE(Gru, Gru, F64)
RNNLM_RECURRENCE(RnnTanh, Elman<TanhFn>, F32)
RNNLM_RECURRENCE(RnnTanh, Elman<TanhFn>, F64)
RNNLM_RECURRENCE(RnnSigmoid, Elman<SigmoidFn>, F32)
RNNLM_RECURRENCE(RnnSigmoid, Elman<SigmoidFn>, F64)
RNNLM_RECURRENCE(RnnRelu, Elman<ReluFn>, F32)
RNNLM_RECURRENCE(RnnRelu, Elman<ReluFn>, F64)
