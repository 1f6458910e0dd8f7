// A synthetic reasoning corpus: arithmetic and small word problems, each with a step-by-step
// trace a small model can imitate and a final answer, rendered in DeepSeek-R1's chat format
//   <｜begin▁of▁sentence｜><｜User｜>{question}<｜Assistant｜><think>\n{trace}\n</think>\n\n{answer}<｜end▁of▁sentence｜>
// which is what R1's chat template renders for the prompt (ending "<｜Assistant｜><think>\n"),
// followed by the completion the model should learn to generate.
//
// Kinds: multi-digit addition and subtraction (column by column, with carries / borrows),
// multiplication (by each digit of the second factor, then the partial sums), comparison
// (digit counts, then digits from the left), and word problems of one or two operations.
// Every statement in a trace is a true equation or comparison; the answer is always
// "The answer is N." (or "The answer is equal.") so it can be checked mechanically.
// Problem i depends only on (seed, i), not on how many are generated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace whale::train {

enum class ProblemKind { Add, Sub, Mul, Compare, Word };

struct Problem {
  ProblemKind kind;
  std::string question;   // "What is 347 + 589?"
  std::string reasoning;  // the text inside <think> … </think>
  std::string answer;     // "The answer is 936."
};

struct CorpusOptions {
  uint64_t seed = 1;
  int max_digits = 3;        // operands of + − and comparisons have 1..max_digits digits
  int max_mul_digits = 2;    // the second factor of × has 1..max_mul_digits digits
};

Problem make_problem(const CorpusOptions& opt, int64_t index);
std::string format_r1(const Problem& p);  // the chat-format document above

}  // namespace whale::train
