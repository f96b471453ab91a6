// ops/rope_tables.cpp — RoPE frequency tables (default, YaRN, Llama-3) and the per-position cos/sin.
//
// Everything is computed in double and stored as float, so the tables are the correctly rounded values of
// the formulas (PyTorch computes them in f32 and may differ in the last bit).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "ops/internal.h"

namespace baleine::ops {

namespace {

void check_dim(const char* op, int dim, double theta) {
  OPS_CHECK(op, dim > 0 && dim % 2 == 0, "rotary dim {} must be positive and even", dim);
  OPS_CHECK(op, theta > 1.0, "theta {} must be > 1", theta);
}

// θ^(-2j/dim), j < dim/2: the unscaled inverse frequencies.
std::vector<double> base_inv_freq(int dim, double theta) {
  std::vector<double> f(size_t(dim / 2));
  for (int j = 0; j < dim / 2; ++j) f[size_t(j)] = std::pow(theta, -2.0 * j / dim);
  return f;
}

// DeepSeek / HF yarn_get_mscale: attention temperature for a context extended by `scale`.
double yarn_get_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

}  // namespace

RopeTable rope_table_default(int dim, double theta) {
  check_dim("rope_table_default", dim, theta);
  RopeTable t;
  t.dim = dim;
  for (double f : base_inv_freq(dim, theta)) t.inv_freq.push_back(float(f));
  return t;
}

RopeTable rope_table_yarn(int dim, double theta, double factor, double original_max_position, double beta_fast,
                          double beta_slow, double mscale, double mscale_all_dim) {
  check_dim("rope_table_yarn", dim, theta);
  OPS_CHECK("rope_table_yarn", factor > 0 && original_max_position > 0 && beta_fast > 0 && beta_slow > 0,
            "factor {}, original_max_position {}, beta_fast {}, beta_slow {} must be > 0", factor,
            original_max_position, beta_fast, beta_slow);
  // Pair index whose wavelength completes `rotations` turns over the original context.
  auto corr_dim = [&](double rotations) {
    return dim * std::log(original_max_position / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(theta));
  };
  const double low = std::max(std::floor(corr_dim(beta_fast)), 0.0);
  double high = std::min(std::ceil(corr_dim(beta_slow)), double(dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp (division by zero), as the references do
  RopeTable t;
  t.dim = dim;
  const std::vector<double> base = base_inv_freq(dim, theta);
  for (int j = 0; j < dim / 2; ++j) {
    // ramp 0: high-frequency pairs keep θ (extrapolate); ramp 1: low-frequency pairs use θ/factor (interpolate).
    const double ramp = std::clamp((j - low) / (high - low), 0.0, 1.0);
    const double b = base[size_t(j)];
    t.inv_freq.push_back(float(b * (1.0 - ramp) + b / factor * ramp));
  }
  t.attention_factor = float(yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim));
  return t;
}

RopeTable rope_table_llama3(int dim, double theta, double factor, double low_freq_factor, double high_freq_factor,
                            double original_max_position) {
  check_dim("rope_table_llama3", dim, theta);
  OPS_CHECK("rope_table_llama3", factor > 0 && original_max_position > 0 && high_freq_factor > low_freq_factor,
            "need factor > 0, original_max_position > 0, high_freq_factor {} > low_freq_factor {}", high_freq_factor,
            low_freq_factor);
  const double low_freq_wavelen = original_max_position / low_freq_factor;
  const double high_freq_wavelen = original_max_position / high_freq_factor;
  RopeTable t;
  t.dim = dim;
  for (double f : base_inv_freq(dim, theta)) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    double r;
    if (wavelen > low_freq_wavelen) {
      r = f / factor;  // long wavelengths: fully interpolated
    } else if (wavelen < high_freq_wavelen) {
      r = f;  // short wavelengths: untouched
    } else {  // in between: blend smoothly
      const double smooth = (original_max_position / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      r = (1.0 - smooth) * f / factor + smooth * f;
    }
    t.inv_freq.push_back(float(r));
  }
  return t;
}

namespace detail {

void rope_cos_sin(const RopeTable& table, int32_t pos, float* cos_out, float* sin_out) {
  const double af = table.attention_factor;
  for (size_t j = 0; j < table.inv_freq.size(); ++j) {
    // (float)(pos · inv_freq): the f32 angle PyTorch builds with torch.outer(t, inv_freq); exact in double.
    const double angle = double(float(double(pos) * double(table.inv_freq[j])));
    cos_out[j] = float(std::cos(angle) * af);
    sin_out[j] = float(std::sin(angle) * af);
  }
}

}  // namespace detail

}  // namespace baleine::ops
