// Synthetic reasoning problems: see corpus.h.
#include "train/corpus.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "core/error.h"
#include "train/data_loader.h"

namespace whale::train {

namespace {

struct Rng {
  uint64_t s;
  int64_t below(int64_t n) { return int64_t(splitmix64(s) % uint64_t(n)); }
  int64_t between(int64_t lo, int64_t hi) { return lo + below(hi - lo + 1); }  // inclusive
};

int64_t pow10(int n) {
  int64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

// A number of 1..max_digits digits, every length equally likely.
int64_t number(Rng& r, int max_digits) {
  const int d = int(r.between(1, max_digits));
  return d == 1 ? r.between(0, 9) : r.between(pow10(d - 1), pow10(d) - 1);
}

std::vector<int> digits_lsb_first(int64_t x) {
  std::vector<int> d;
  do d.push_back(int(x % 10)), x /= 10;
  while (x > 0);
  return d;
}

std::string answer_of(int64_t v) { return fmt::format("The answer is {}.", v); }

Problem add(Rng& r, const CorpusOptions& o) {
  const int64_t a = number(r, o.max_digits), b = number(r, o.max_digits);
  const std::vector<int> da = digits_lsb_first(a), db = digits_lsb_first(b);
  std::string t = "Add the digits from the right, carrying when a column reaches 10.\n";
  int carry = 0;
  for (size_t i = 0; i < std::max(da.size(), db.size()); ++i) {
    const int x = i < da.size() ? da[i] : 0, y = i < db.size() ? db[i] : 0, s = x + y + carry;
    t += carry ? fmt::format("{} + {} + {} = {}", x, y, carry, s) : fmt::format("{} + {} = {}", x, y, s);
    carry = s / 10;
    t += carry ? fmt::format(", write {}, carry 1.\n", s % 10) : fmt::format(", write {}.\n", s);
  }
  if (carry) t += "The last carry 1 becomes the leading digit.\n";
  t += fmt::format("So {} + {} = {}.", a, b, a + b);
  return {ProblemKind::Add, fmt::format("What is {} + {}?", a, b), t, answer_of(a + b)};
}

// Column subtraction of big − small (big ≥ small) into t; returns big − small.
int64_t column_sub(int64_t big, int64_t small, std::string& t) {
  const std::vector<int> da = digits_lsb_first(big), db = digits_lsb_first(small);
  t += "Subtract the digits from the right, borrowing 10 when a column goes below 0.\n";
  int borrow = 0;
  for (size_t i = 0; i < da.size(); ++i) {
    const int x = da[i], y = i < db.size() ? db[i] : 0;
    const std::string lhs = borrow ? fmt::format("{} - {} - {}", x, y, borrow) : fmt::format("{} - {}", x, y);
    int d = x - y - borrow;
    if (d < 0) {
      d += 10;
      t += fmt::format("{} < 0, borrow: 1{} = {}, write {}.\n", lhs, lhs, d, d);
      borrow = 1;
    } else {
      t += fmt::format("{} = {}, write {}.\n", lhs, d, d);
      borrow = 0;
    }
  }
  return big - small;
}

Problem sub(Rng& r, const CorpusOptions& o) {
  const int64_t a = number(r, o.max_digits), b = number(r, o.max_digits);
  std::string t;
  if (a >= b) {
    column_sub(a, b, t);
    t += fmt::format("So {} - {} = {}.", a, b, a - b);
  } else {
    t += fmt::format("{} < {}, so the result is negative: compute {} - {} and put a minus sign in front.\n", a, b, b, a);
    column_sub(b, a, t);
    t += fmt::format("So {} - {} = {}, and {} - {} = {}.", b, a, b - a, a, b, a - b);
  }
  return {ProblemKind::Sub, fmt::format("What is {} - {}?", a, b), t, answer_of(a - b)};
}

Problem mul(Rng& r, const CorpusOptions& o) {
  const int64_t a = number(r, o.max_digits), b = number(r, o.max_mul_digits);
  const std::vector<int> db = digits_lsb_first(b);
  std::string t;
  if (db.size() == 1) {
    t = fmt::format("{} * {} = {}.\nSo {} * {} = {}.", a, b, a * b, a, b, a * b);
  } else {
    t = fmt::format("Multiply {} by each digit of {} and add the parts.\n", a, b);
    std::vector<int64_t> parts;
    for (size_t i = 0; i < db.size(); ++i) {
      const int64_t m = int64_t(db[i]) * pow10(int(i));
      parts.push_back(a * m);
      t += fmt::format("{} * {} = {}.\n", a, m, a * m);
    }
    std::string sum;
    for (size_t i = 0; i < parts.size(); ++i) sum += fmt::format("{}{}", i ? " + " : "", parts[i]);
    t += fmt::format("{} = {}.\nSo {} * {} = {}.", sum, a * b, a, b, a * b);
  }
  return {ProblemKind::Mul, fmt::format("What is {} * {}?", a, b), t, answer_of(a * b)};
}

Problem compare(Rng& r, const CorpusOptions& o) {
  int64_t a = number(r, o.max_digits), b = number(r, o.max_digits);
  if (r.below(3) == 0) {  // same length, often sharing leading digits: the interesting case
    const std::vector<int> da = digits_lsb_first(a);
    b = a;
    const int64_t pos = r.below(int64_t(da.size()));
    b += (int64_t(r.below(10)) - da[size_t(pos)]) * pow10(int(pos));
    if (da.size() > 1 && b < pow10(int(da.size()) - 1)) b = a;  // keep the length
  }
  const std::string sa = std::to_string(a), sb = std::to_string(b);
  std::string t;
  const int64_t big = std::max(a, b);
  if (sa.size() != sb.size()) {
    t = fmt::format("{} has {} digits and {} has {} digits, so {} is larger.", a, sa.size(), b,
                    sb.size(), big);
  } else {
    t = fmt::format("Both numbers have {} digits, so compare the digits from the left.\n", sa.size());
    size_t i = 0;
    while (i < sa.size() && sa[i] == sb[i]) t += fmt::format("{} = {}.\n", sa[i], sb[i]), ++i;
    if (i == sa.size()) t += fmt::format("All digits are the same, so {} and {} are equal.", a, b);
    else t += fmt::format("{} {} {}, so {} is larger.", sa[i], sa[i] < sb[i] ? '<' : '>', sb[i], big);
  }
  return {ProblemKind::Compare, fmt::format("Which is larger, {} or {}?", a, b), t,
          a == b ? "The answer is equal." : answer_of(big)};
}

constexpr std::array kNames = {"Alice", "Bob", "Chen", "Dara", "Emma", "Farid", "Grace", "Hugo"};
constexpr std::array kItems = {"apples", "books", "coins", "marbles", "pencils", "stamps", "shells", "cards"};

Problem word(Rng& r) {
  const std::string name = kNames[size_t(r.below(kNames.size()))];
  const std::string item = kItems[size_t(r.below(kItems.size()))];
  switch (r.below(4)) {
    case 0: {
      const int64_t a = r.between(2, 60), b = r.between(1, 40);
      return {ProblemKind::Word,
              fmt::format("{} has {} {}. {} gets {} more. How many {} does {} have now?", name, a, item, name, b, item, name),
              fmt::format("{} starts with {} {} and gets {} more, so add.\n{} + {} = {}.", name, a, item, b, a, b, a + b),
              answer_of(a + b)};
    }
    case 1: {
      const int64_t a = r.between(2, 80), b = r.between(1, a);
      return {ProblemKind::Word,
              fmt::format("{} has {} {} and gives away {}. How many {} are left?", name, a, item, b, item),
              fmt::format("{} starts with {} {} and gives away {}, so subtract.\n{} - {} = {}.", name, a, item, b, a, b, a - b),
              answer_of(a - b)};
    }
    case 2: {
      const int64_t a = r.between(2, 12), b = r.between(2, 12);
      return {ProblemKind::Word,
              fmt::format("There are {} boxes with {} {} in each box. How many {} are there in total?", a, b, item, item),
              fmt::format("Each of the {} boxes holds {} {}, so multiply.\n{} * {} = {}.", a, b, item, a, b, a * b),
              answer_of(a * b)};
    }
    default: {
      const int64_t a = r.between(5, 50), b = r.between(1, 30), c = r.between(1, a + b);
      return {ProblemKind::Word,
              fmt::format("{} has {} {}, gets {} more and then gives away {}. How many {} does {} have now?",
                          name, a, item, b, c, item, name),
              fmt::format("First add the {} {} {} gets.\n{} + {} = {}.\nThen subtract the {} given away.\n{} - {} = {}.",
                          b, item, name, a, b, a + b, c, a + b, c, a + b - c),
              answer_of(a + b - c)};
    }
  }
}

}  // namespace

Problem make_problem(const CorpusOptions& o, int64_t index) {
  if (o.max_digits < 1 || o.max_digits > 9) fail("corpus: max_digits must be 1..9, not {}", o.max_digits);
  if (o.max_mul_digits < 1 || o.max_mul_digits > 9)
    fail("corpus: max_mul_digits must be 1..9, not {}", o.max_mul_digits);
  uint64_t s = o.seed * 0x9E3779B97F4A7C15ull + uint64_t(index);
  Rng r{splitmix64(s)};
  switch (r.below(5)) {
    case 0: return add(r, o);
    case 1: return sub(r, o);
    case 2: return mul(r, o);
    case 3: return compare(r, o);
    default: return word(r);
  }
}

std::string format_r1(const Problem& p) {
  return "<｜begin▁of▁sentence｜><｜User｜>" + p.question + "<｜Assistant｜><think>\n" + p.reasoning +
         "\n</think>\n\n" + p.answer + "<｜end▁of▁sentence｜>";
}

}  // namespace whale::train
