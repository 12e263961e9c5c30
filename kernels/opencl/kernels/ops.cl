// The element-wise, normalisation, cache, attention and MoE kernels of the device backend, one
// program (kernels/vulkan/shaders/*.comp say what each computes; the parameter blocks are the
// same). WG and ATTN_WG are the work-group sizes the host launches with (build options).

#define STRIDE_LOOP(i, n) for (uint i = get_global_id(0); i < (n); i += get_global_size(0))

// Tree reduction over the work-group through `partial` (maximum when take_max, else sum).
float reduce(float v, bool take_max, __local float* partial) {
  const uint lane = get_local_id(0);
  partial[lane] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint s = get_local_size(0) / 2; s > 0; s >>= 1) {
    if (lane < s)
      partial[lane] = take_max ? fmax(partial[lane], partial[lane + s]) : partial[lane] + partial[lane + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float r = partial[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

typedef struct {
  uint rows, cols, x_off, y_off, w_off;
  float eps;
} RmsNormParams;

__kernel void rms_norm(__global const float* x, __global float* y, __global const float* w,
                       RmsNormParams p) {
  __local float partial[WG];
  const uint lane = get_local_id(0), width = get_local_size(0);
  for (uint r = get_group_id(0); r < p.rows; r += get_num_groups(0)) {
    const uint xr = p.x_off + r * p.cols, yr = p.y_off + r * p.cols;
    float sum = 0.0f;
    for (uint c = lane; c < p.cols; c += width) sum += x[xr + c] * x[xr + c];
    const float inv = 1.0f / sqrt(reduce(sum, false, partial) / (float)p.cols + p.eps);
    for (uint c = lane; c < p.cols; c += width) y[yr + c] = x[xr + c] * inv * w[p.w_off + c];
  }
}

typedef struct {
  uint tokens, n_heads, head_dim, half_, x_off, x_stride, tab_off, neox;
} RopeParams;

__kernel void rope(__global float* x, __global const float* table, RopeParams p) {
  STRIDE_LOOP(j, p.tokens * p.n_heads * p.half_) {
    const uint i = j % p.half_, h = (j / p.half_) % p.n_heads, t = j / (p.half_ * p.n_heads);
    const uint base = p.x_off + t * p.x_stride + h * p.head_dim;
    const uint a = base + (p.neox ? i : 2 * i), b = a + (p.neox ? p.half_ : 1);
    const float c = table[p.tab_off + 2 * (t * p.half_ + i)];
    const float s = table[p.tab_off + 2 * (t * p.half_ + i) + 1];
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

typedef struct {
  uint n, g_off, u_off, y_off, gelu;
} GluParams;

__kernel void glu(__global const float* g, __global const float* u, __global float* y,
                  GluParams p) {
  STRIDE_LOOP(i, p.n) {
    const float x = g[p.g_off + i];
    const float a = p.gelu ? 0.5f * x * (1.0f + tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)))
                           : x / (1.0f + exp(-x));
    y[p.y_off + i] = a * u[p.u_off + i];
  }
}

typedef struct {
  uint rows, cols, x_off, y_off, y_stride, s_off, scaled;
} AddParams;

__kernel void add(__global float* x, __global const float* y, __global const float* scales,
                  AddParams p) {
  STRIDE_LOOP(i, p.rows * p.cols) {
    const uint r = i / p.cols, c = i % p.cols;
    const float v = y[p.y_off + r * p.y_stride + c];
    if (!p.scaled) {
      x[p.x_off + i] += v;
    } else {
      const float s = scales[p.s_off + r];
      if (s != 0.0f) x[p.x_off + i] += s * v;
    }
  }
}

typedef struct {
  uint rows, cols, x_off, g_off;
} ScaleRowsParams;

__kernel void scale_rows(__global float* x, __global const float* g, ScaleRowsParams p) {
  STRIDE_LOOP(i, p.rows * p.cols) x[p.x_off + i] *= 1.0f / (1.0f + exp(-g[p.g_off + i / p.cols]));
}

typedef struct {
  uint n, cols, x_off, y_off, idx_off;
} CopyRowsParams;

__kernel void copy_rows(__global const float* x, __global float* y, __global const int* rows,
                        CopyRowsParams p) {
  STRIDE_LOOP(j, p.n * p.cols) {
    const uint i = j / p.cols, c = j % p.cols;
    y[p.y_off + j] = x[p.x_off + (uint)rows[p.idx_off + i] * p.cols + c];
  }
}

typedef struct {
  uint tokens, kv_dim, src_off, src_stride, pos_off, f16;
} StoreKvParams;

// Row t of src to position positions[pos_off + t] of one sequence's cache for one layer: F16
// (vstore_half, round to nearest even) or F32.
__kernel void store_kv(__global const float* src, __global uchar* cache,
                       __global const int* positions, StoreKvParams p) {
  STRIDE_LOOP(j, p.tokens * p.kv_dim) {
    const uint t = j / p.kv_dim, e = j % p.kv_dim;
    const uint at = (uint)positions[p.pos_off + t] * p.kv_dim + e;
    const float v = src[p.src_off + t * p.src_stride + e];
    if (p.f16)
      vstore_half_rte(v, at, (__global half*)cache);
    else
      ((__global float*)cache)[at] = v;
  }
}

typedef struct {
  uint group, head_dim, kv_dim, q_off, q_stride, y_off, y_stride, pos_off, window, f16;
  float scale, softcap;
} AttentionParams;

float cached(__global const uchar* c, uint e, uint f16) {
  return f16 ? vload_half(e, (__global const half*)c) : ((__global const float*)c)[e];
}

#define MAX_DIMS 8

// Flash-style causal attention: a work-group per (query head, token), keys in chunks of one per
// work-item, online softmax; GQA, sliding window, soft-cap. head_dim ≤ 8 · ATTN_WG and ≤ 512.
__kernel void attention(__global const float* q, __global float* y, __global const uchar* kc,
                        __global const uchar* vc, __global const int* positions,
                        AttentionParams p) {
  __local float qs[512];
  __local float scores[ATTN_WG];
  __local float partial[ATTN_WG];
  const uint lane = get_local_id(0), width = get_local_size(0);
  const uint h = get_group_id(0), t = get_group_id(1), kvh = h / p.group;
  const int pos = positions[p.pos_off + t];
  const int lo = p.window > 0 ? max(0, pos - (int)p.window + 1) : 0;
  const uint qb = p.q_off + t * p.q_stride + h * p.head_dim, kb = kvh * p.head_dim;
  for (uint d = lane; d < p.head_dim; d += width) qs[d] = q[qb + d];
  barrier(CLK_LOCAL_MEM_FENCE);

  float m = -INFINITY, l = 0.0f;
  float acc[MAX_DIMS];
  for (uint i = 0; i < MAX_DIMS; ++i) acc[i] = 0.0f;
  for (int j0 = lo; j0 <= pos; j0 += (int)width) {
    const int j = j0 + (int)lane;
    float s = -INFINITY;
    if (j <= pos) {
      const uint row = (uint)j * p.kv_dim + kb;
      float dot = 0.0f;
      for (uint d = 0; d < p.head_dim; ++d) dot += qs[d] * cached(kc, row + d, p.f16);
      s = dot * p.scale;
      if (p.softcap > 0.0f) s = p.softcap * tanh(s / p.softcap);
    }
    const float m_new = fmax(m, reduce(s, true, partial));
    const float e = j <= pos ? exp(s - m_new) : 0.0f;
    scores[lane] = e;
    const float correction = exp(m - m_new);
    l = l * correction + reduce(e, false, partial);  // its barriers also publish scores[]
    const int count = min((int)width, pos - j0 + 1);
    for (uint i = 0; i < MAX_DIMS; ++i) {
      const uint d = lane + i * width;
      if (d >= p.head_dim) break;
      float a = acc[i] * correction;
      for (int k = 0; k < count; ++k) a += scores[k] * cached(vc, (uint)(j0 + k) * p.kv_dim + kb + d, p.f16);
      acc[i] = a;
    }
    m = m_new;
    barrier(CLK_LOCAL_MEM_FENCE);  // scores[] is rewritten by the next chunk
  }
  for (uint i = 0; i < MAX_DIMS; ++i) {
    const uint d = lane + i * width;
    if (d < p.head_dim) y[p.y_off + t * p.y_stride + h * p.head_dim + d] = acc[i] / l;
  }
}

typedef struct {
  uint tokens, n_expert, k, norm, logits_off, ids_off, w_off;
} MoeRouteParams;

#define MAX_USED 16

// Softmax over the router logits, the k most probable experts (ties: the lower index), their
// probabilities renormalised when norm ≠ 0; one work-item per token.
__kernel void moe_route(__global const float* logits, __global int* ids, __global float* weights,
                        MoeRouteParams p) {
  const uint t = get_global_id(0);
  if (t >= p.tokens) return;
  const uint base = p.logits_off + t * p.n_expert;
  float top = logits[base];
  for (uint e = 1; e < p.n_expert; ++e) top = fmax(top, logits[base + e]);
  float sum = 0.0f;
  for (uint e = 0; e < p.n_expert; ++e) sum += exp(logits[base + e] - top);
  int chosen[MAX_USED];
  float prob[MAX_USED];
  float kept = 0.0f;
  for (uint i = 0; i < p.k; ++i) {
    int best = -1;
    float best_p = -1.0f;
    for (uint e = 0; e < p.n_expert; ++e) {
      bool taken = false;
      for (uint j = 0; j < i; ++j) taken = taken || chosen[j] == (int)e;
      const float pe = exp(logits[base + e] - top) / sum;
      if (!taken && (best < 0 || pe > best_p)) {
        best = (int)e;
        best_p = pe;
      }
    }
    chosen[i] = best;
    prob[i] = best_p;
    kept += best_p;
  }
  for (uint i = 0; i < p.k; ++i) {
    ids[p.ids_off + t * p.k + i] = chosen[i];
    weights[p.w_off + t * p.k + i] = p.norm ? prob[i] / kept : prob[i];
  }
}

typedef struct {
  uint tokens, cols, k, down_off, w_off, y_off;
} MoeCombineParams;

__kernel void moe_combine(__global const float* down, __global const float* weights,
                          __global float* y, MoeCombineParams p) {
  STRIDE_LOOP(j, p.tokens * p.cols) {
    const uint t = j / p.cols, c = j % p.cols;
    float s = 0.0f;
    for (uint i = 0; i < p.k; ++i)
      s += weights[p.w_off + t * p.k + i] * down[p.down_off + (t * p.k + i) * p.cols + c];
    y[p.y_off + j] = s;
  }
}
