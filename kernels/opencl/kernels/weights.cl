// The weight kernels, built once per block format after dequant.cl (kernels/vulkan/shaders/
// mul_mat.comp and get_rows.comp say what they compute; the parameter blocks are the same).
// WG is the work-group size the host launches with (a build option).

typedef struct {
  uint rows, cols, row_bytes, w_row0, tokens, x_off, x_stride, y_off, y_stride;
  uint x_div, ids_off, expert_first, expert_count, expert_bytes;
} MulMatParams;

#define TILE 8

// y[t][r] = Σ_c W[r][c]·x[t][c]: a work-group per weight row and tile of `tile` tokens, work-items
// striding over 16-element chunks, partial sums reduced through local memory.
void mul_mat_rows(__global const uchar* w, __global const float* x, __global float* y,
                  MulMatParams p, uint base, uint x_row0, uint t0, uint tile,
                  __local float* partial) {
  const uint lane = get_local_id(0), width = get_local_size(0);
  const uint nt = min(tile, p.tokens - t0), chunks = (p.cols + 15) / 16;
  for (uint r = get_group_id(0); r < p.rows; r += get_num_groups(0)) {
    const uint row = base + (p.w_row0 + r) * p.row_bytes;
    float sum[TILE];
    for (uint t = 0; t < TILE; ++t) sum[t] = 0.0f;
    for (uint c = lane; c < chunks; c += width) {
      float v[16];
      dequant16(w, row, c, p.cols, v);
      const uint n = min(16u, p.cols - 16 * c);
      for (uint t = 0; t < nt; ++t) {
        __global const float* xr = x + p.x_off + (x_row0 + t) * p.x_stride + 16 * c;
        float s = 0.0f;
        for (uint i = 0; i < 16; ++i)
          if (i < n) s += v[i] * xr[i];
        sum[t] += s;
      }
    }
    for (uint t = 0; t < nt; ++t) partial[t * width + lane] = sum[t];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = width / 2; s > 0; s >>= 1) {
      if (lane < s)
        for (uint t = 0; t < nt; ++t) partial[t * width + lane] += partial[t * width + lane + s];
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint t = lane; t < nt; t += width) y[p.y_off + (t0 + t) * p.y_stride + r] = partial[t * width];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}

__kernel void mul_mat(__global const uchar* w, __global const float* x, __global float* y,
                      MulMatParams p) {
  __local float partial[TILE * WG];
  const uint t0 = get_group_id(1) * TILE;
  mul_mat_rows(w, x, y, p, 0, t0, t0, TILE, partial);
}

// Mixture of experts (ggml's mul_mat_id): token t0 of the launch is one (token, slot) pair whose
// expert is ids[ids_off + t0], input row x[t0 / x_div]; this launch's weights hold experts
// expert_first .. expert_first + expert_count − 1.
__kernel void mul_mat_id(__global const uchar* w, __global const float* x, __global float* y,
                         __global const int* ids, MulMatParams p) {
  __local float partial[WG];
  const uint t0 = get_group_id(1);
  const int e = ids[p.ids_off + t0];
  if (e < (int)p.expert_first || e >= (int)(p.expert_first + p.expert_count)) return;
  mul_mat_rows(w, x, y, p, (uint)(e - (int)p.expert_first) * p.expert_bytes, t0 / p.x_div, t0, 1,
               partial);
}

typedef struct {
  uint n, cols, row_bytes, row_first, row_count, y_off, ids_off;
  float scale;
} GetRowsParams;

// Embedding gather: y[i] = scale · row ids[ids_off + i] of the table, for the ids whose rows this
// launch's buffer holds (row_first .. row_first + row_count − 1).
__kernel void get_rows(__global const uchar* w, __global float* y, __global const int* ids,
                       GetRowsParams p) {
  const uint i = get_group_id(0);
  const int id = ids[p.ids_off + i];
  if (id < (int)p.row_first || id >= (int)(p.row_first + p.row_count)) return;
  const uint row = (uint)(id - (int)p.row_first) * p.row_bytes;
  for (uint c = get_local_id(0); c < (p.cols + 15) / 16; c += get_local_size(0)) {
    float v[16];
    dequant16(w, row, c, p.cols, v);
    for (uint k = 0; k < min(16u, p.cols - 16 * c); ++k)
      y[p.y_off + i * p.cols + 16 * c + k] = p.scale == 1.0f ? v[k] : v[k] * p.scale;
  }
}
