// agent/rational.h — exact arithmetic for the calculator tool: signed big integers (base 10^9 limbs) and reduced
// fractions of them. Sizes are bounded by the caller (the calculator's digit limit) so every operation is cheap.
// defines: BigInt, Rational
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace baleine::agent {

class BigInt {
 public:
  BigInt() = default;
  BigInt(int64_t v);                                  // NOLINT: implicit from small integers is convenient
  static BigInt from_decimal(const std::string& digits);  // [0-9]+, no sign
  std::string to_string() const;
  bool is_zero() const { return limbs_.empty(); }
  bool negative() const { return neg_; }
  size_t digits() const;  // decimal digits of |x| (1 for zero)
  BigInt abs() const;

  friend BigInt operator+(const BigInt& a, const BigInt& b);
  friend BigInt operator-(const BigInt& a, const BigInt& b);
  friend BigInt operator*(const BigInt& a, const BigInt& b);
  BigInt operator-() const;
  // Truncating division (C semantics: quotient toward zero, remainder has the dividend's sign). b != 0.
  static void divmod(const BigInt& a, const BigInt& b, BigInt& q, BigInt& r);
  static int compare(const BigInt& a, const BigInt& b);
  friend bool operator==(const BigInt& a, const BigInt& b) { return compare(a, b) == 0; }
  static BigInt gcd(BigInt a, BigInt b);

 private:
  static int compare_abs(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);
  static std::vector<uint32_t> add_abs(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);
  static std::vector<uint32_t> sub_abs(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);  // |a| >= |b|
  void trim();
  std::vector<uint32_t> limbs_;  // little-endian, base 10^9, no leading zero limbs
  bool neg_ = false;             // never true for zero
};

// p/q in lowest terms, q > 0.
class Rational {
 public:
  Rational() : den_(1) {}
  Rational(BigInt n) : num_(std::move(n)), den_(1) {}  // NOLINT
  Rational(BigInt n, BigInt d);                          // throws on d = 0
  // "123", "12.5", "1e-3", "2.5E+4"
  static Rational parse_decimal(const std::string& text);
  const BigInt& num() const { return num_; }
  const BigInt& den() const { return den_; }
  bool is_integer() const { return den_ == BigInt(1); }
  size_t digits() const { return num_.digits() + den_.digits(); }

  friend Rational operator+(const Rational& a, const Rational& b);
  friend Rational operator-(const Rational& a, const Rational& b);
  friend Rational operator*(const Rational& a, const Rational& b);
  friend Rational operator/(const Rational& a, const Rational& b);  // throws on division by zero
  Rational operator-() const;
  Rational pow(int64_t e) const;  // throws for 0^negative

  std::string to_string() const;  // "p/q" or "p"
  // Exact decimal if the denominator has only factors 2 and 5 (exact = true), else rounded to `significant` digits.
  std::string to_decimal(int significant, bool* exact) const;

 private:
  void reduce();
  BigInt num_, den_;
};

}  // namespace baleine::agent
