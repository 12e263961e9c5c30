// The scalar reference of every block format: plain loops written for clarity. This is the
// specification that every SIMD and GPU kernel is tested against; it is not meant to be fast.
#pragma once

#include <cstdint>

#include "gguf/types.h"

namespace ember::cpu::reference {

// Types with a reference dequantisation / quantisation. Others throw std::invalid_argument.
bool can_dequantize(gguf::TensorType type);
bool can_quantize(gguf::TensorType type);

// n elements (a multiple of the type's block size) from the blocks at src into dst.
void dequantize_row(gguf::TensorType type, const void* src, float* dst, int64_t n);
// n floats into blocks. The K-quant and IQ4 quantisers search scales per group (least squares
// over a few candidates), good enough for activations, tests and benchmark models.
void quantize_row(gguf::TensorType type, const float* src, void* dst, int64_t n);

// Σ w_i·a_i of two rows of n elements in any dequantisable types, accumulated in double: the
// reference for the quantised dot products.
double dot(gguf::TensorType weight_type, const void* weights, gguf::TensorType act_type,
           const void* activations, int64_t n);

}  // namespace ember::cpu::reference
