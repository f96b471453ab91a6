#include "agent/rational.h"

#include <algorithm>

#include "core/check.h"

namespace baleine::agent {

namespace {
constexpr uint32_t kBase = 1000000000u;
}

BigInt::BigInt(int64_t v) {
  neg_ = v < 0;
  uint64_t m = neg_ ? uint64_t(0) - uint64_t(v) : uint64_t(v);
  while (m) limbs_.push_back(uint32_t(m % kBase)), m /= kBase;
}

BigInt BigInt::from_decimal(const std::string& d) {
  BigInt r;
  for (size_t end = d.size(); end > 0;) {
    size_t start = end >= 9 ? end - 9 : 0;
    uint32_t limb = 0;
    for (size_t i = start; i < end; ++i) {
      BALEINE_CHECK(d[i] >= '0' && d[i] <= '9', "not a decimal number: '{}'", d.substr(0, 40));
      limb = limb * 10 + uint32_t(d[i] - '0');
    }
    r.limbs_.push_back(limb);
    end = start;
  }
  r.trim();
  return r;
}

void BigInt::trim() {
  while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
  if (limbs_.empty()) neg_ = false;
}

std::string BigInt::to_string() const {
  if (limbs_.empty()) return "0";
  std::string s = neg_ ? "-" : "";
  s += std::to_string(limbs_.back());
  for (size_t i = limbs_.size() - 1; i-- > 0;) {
    std::string part = std::to_string(limbs_[i]);
    s += std::string(9 - part.size(), '0') + part;
  }
  return s;
}

size_t BigInt::digits() const {
  if (limbs_.empty()) return 1;
  return (limbs_.size() - 1) * 9 + std::to_string(limbs_.back()).size();
}

BigInt BigInt::abs() const {
  BigInt r = *this;
  r.neg_ = false;
  return r;
}

int BigInt::compare_abs(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  for (size_t i = a.size(); i-- > 0;)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

int BigInt::compare(const BigInt& a, const BigInt& b) {
  if (a.neg_ != b.neg_) return a.neg_ ? -1 : 1;
  const int c = compare_abs(a.limbs_, b.limbs_);
  return a.neg_ ? -c : c;
}

std::vector<uint32_t> BigInt::add_abs(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<uint32_t> r(std::max(a.size(), b.size()) + 1, 0);
  uint32_t carry = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    uint64_t s = uint64_t(carry) + (i < a.size() ? a[i] : 0) + (i < b.size() ? b[i] : 0);
    r[i] = uint32_t(s % kBase);
    carry = uint32_t(s / kBase);
  }
  while (!r.empty() && r.back() == 0) r.pop_back();
  return r;
}

std::vector<uint32_t> BigInt::sub_abs(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<uint32_t> r(a.size(), 0);
  int64_t borrow = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int64_t d = int64_t(a[i]) - borrow - (i < b.size() ? int64_t(b[i]) : 0);
    borrow = d < 0;
    r[i] = uint32_t(d < 0 ? d + kBase : d);
  }
  while (!r.empty() && r.back() == 0) r.pop_back();
  return r;
}

BigInt operator+(const BigInt& a, const BigInt& b) {
  BigInt r;
  if (a.neg_ == b.neg_) {
    r.limbs_ = BigInt::add_abs(a.limbs_, b.limbs_);
    r.neg_ = a.neg_;
  } else if (BigInt::compare_abs(a.limbs_, b.limbs_) >= 0) {
    r.limbs_ = BigInt::sub_abs(a.limbs_, b.limbs_);
    r.neg_ = a.neg_;
  } else {
    r.limbs_ = BigInt::sub_abs(b.limbs_, a.limbs_);
    r.neg_ = b.neg_;
  }
  r.trim();
  return r;
}

BigInt BigInt::operator-() const {
  BigInt r = *this;
  if (!r.limbs_.empty()) r.neg_ = !r.neg_;
  return r;
}

BigInt operator-(const BigInt& a, const BigInt& b) { return a + (-b); }

BigInt operator*(const BigInt& a, const BigInt& b) {
  BigInt r;
  if (a.is_zero() || b.is_zero()) return r;
  std::vector<uint64_t> acc(a.limbs_.size() + b.limbs_.size() + 1, 0);
  for (size_t i = 0; i < a.limbs_.size(); ++i) {
    uint64_t carry = 0;
    for (size_t j = 0; j < b.limbs_.size(); ++j) {
      uint64_t cur = acc[i + j] + uint64_t(a.limbs_[i]) * b.limbs_[j] + carry;
      acc[i + j] = cur % kBase;
      carry = cur / kBase;
    }
    for (size_t k = i + b.limbs_.size(); carry; ++k) {
      uint64_t cur = acc[k] + carry;
      acc[k] = cur % kBase;
      carry = cur / kBase;
    }
  }
  r.limbs_.assign(acc.begin(), acc.end());
  r.neg_ = a.neg_ != b.neg_;
  r.trim();
  return r;
}

void BigInt::divmod(const BigInt& a, const BigInt& b, BigInt& q_out, BigInt& r) {
  BALEINE_CHECK(!b.is_zero(), "division by zero");
  BigInt bb = b.abs(), rem, q;  // locals: q_out or r may alias a or b
  q.limbs_.assign(a.limbs_.size(), 0);
  for (size_t i = a.limbs_.size(); i-- > 0;) {
    rem.limbs_.insert(rem.limbs_.begin(), a.limbs_[i]);  // rem = rem * base + limb
    rem.trim();
    if (compare_abs(rem.limbs_, bb.limbs_) < 0) continue;  // digit 0 (q.limbs_[i] is already 0)
    // Largest digit d with bb * d <= rem, by bisection.
    uint32_t lo = 1, hi = kBase - 1;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo + 1) / 2;
      if (compare_abs((bb * BigInt(int64_t(mid))).limbs_, rem.limbs_) <= 0) lo = mid;
      else hi = mid - 1;
    }
    if (lo) rem = rem - bb * BigInt(int64_t(lo));
    q.limbs_[i] = lo;
  }
  q.neg_ = a.neg_ != b.neg_;
  q.trim();
  rem.neg_ = a.neg_ && !rem.is_zero();
  q_out = std::move(q);
  r = std::move(rem);
}

BigInt BigInt::gcd(BigInt a, BigInt b) {
  a = a.abs();
  b = b.abs();
  while (!b.is_zero()) {
    BigInt q, r;
    divmod(a, b, q, r);
    a = std::move(b);
    b = std::move(r);
  }
  return a;
}

Rational::Rational(BigInt n, BigInt d) : num_(std::move(n)), den_(std::move(d)) {
  BALEINE_CHECK(!den_.is_zero(), "division by zero");
  reduce();
}

void Rational::reduce() {
  if (den_.negative()) num_ = -num_, den_ = -den_;
  BigInt g = BigInt::gcd(num_, den_);
  if (!(g == BigInt(1)) && !g.is_zero()) {
    BigInt r;
    BigInt::divmod(num_, g, num_, r);
    BigInt::divmod(den_, g, den_, r);
  }
  if (num_.is_zero()) den_ = BigInt(1);
}

Rational Rational::parse_decimal(const std::string& t) {
  size_t i = 0;
  std::string digits;
  int64_t scale = 0;  // value = digits * 10^scale
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') digits += t[i++];
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') digits += t[i++], --scale;
  }
  BALEINE_CHECK(!digits.empty(), "not a number: '{}'", t.substr(0, 40));
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool neg = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
    std::string e;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') e += t[i++];
    BALEINE_CHECK(!e.empty() && e.size() <= 4, "bad exponent in '{}'", t.substr(0, 40));
    scale += neg ? -std::stoll(e) : std::stoll(e);
  }
  BALEINE_CHECK(i == t.size(), "not a number: '{}'", t.substr(0, 40));
  BigInt n = BigInt::from_decimal(digits);
  BigInt p = BigInt::from_decimal("1" + std::string(size_t(std::llabs(scale)), '0'));
  return scale >= 0 ? Rational(n * p) : Rational(n, p);
}

Rational operator+(const Rational& a, const Rational& b) { return Rational(a.num_ * b.den_ + b.num_ * a.den_, a.den_ * b.den_); }
Rational operator-(const Rational& a, const Rational& b) { return Rational(a.num_ * b.den_ - b.num_ * a.den_, a.den_ * b.den_); }
Rational operator*(const Rational& a, const Rational& b) { return Rational(a.num_ * b.num_, a.den_ * b.den_); }
Rational operator/(const Rational& a, const Rational& b) {
  BALEINE_CHECK(!b.num_.is_zero(), "division by zero");
  return Rational(a.num_ * b.den_, a.den_ * b.num_);
}
Rational Rational::operator-() const { return Rational(-num_, den_); }

Rational Rational::pow(int64_t e) const {
  if (e < 0) {
    BALEINE_CHECK(!num_.is_zero(), "zero to a negative power");
    return Rational(den_, num_).pow(-e);
  }
  Rational result(BigInt(1)), base = *this;
  while (e) {
    if (e & 1) result = result * base;
    e >>= 1;
    if (e) base = base * base;
  }
  return result;
}

std::string Rational::to_string() const { return is_integer() ? num_.to_string() : num_.to_string() + "/" + den_.to_string(); }

std::string Rational::to_decimal(int significant, bool* exact) const {
  // Terminating iff the denominator has no prime factors but 2 and 5.
  BigInt d = den_, q, r;
  for (int64_t f : {2, 5})
    for (;;) {
      BigInt::divmod(d, BigInt(f), q, r);
      if (!r.is_zero()) break;
      d = q;
    }
  const bool terminating = d == BigInt(1);
  BigInt ip, rem;
  BigInt::divmod(num_.abs(), den_, ip, rem);
  std::string out = ip.to_string(), frac;
  int sig = ip.is_zero() ? 0 : int(ip.digits());
  const size_t max_frac = 2000;
  while (!rem.is_zero() && frac.size() < max_frac && (terminating || sig < significant)) {
    BigInt digit;
    BigInt::divmod(rem * BigInt(10), den_, digit, rem);
    const char c = char('0' + std::stoi(digit.to_string()));
    frac += c;
    if (sig > 0 || c != '0') ++sig;
  }
  *exact = rem.is_zero();
  if (!*exact) {  // round half up on the next digit
    BigInt digit, unused;
    BigInt::divmod(rem * BigInt(10), den_, digit, unused);
    if (std::stoi(digit.to_string()) >= 5) {
      std::string all = out + frac;
      size_t k = all.size();
      while (k > 0 && all[k - 1] == '9') all[--k] = '0';
      if (k == 0) all.insert(all.begin(), '1');
      else ++all[k - 1];
      out = all.substr(0, all.size() - frac.size());
      frac = all.substr(all.size() - frac.size());
    }
  }
  std::string s = (num_.negative() ? "-" : "") + out;
  if (!frac.empty()) s += "." + frac;
  return s;
}

}  // namespace baleine::agent
