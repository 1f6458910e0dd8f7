// ReasoningSplitter: reasoning/content separation under every way of chunking the text.
#include <gtest/gtest.h>

#include "text/reasoning.h"

namespace whale {
namespace {

ReasoningDelta run(ReasoningSplitter s, const std::vector<std::string>& chunks) {
  ReasoningDelta all;
  for (auto& c : chunks) {
    auto d = s.feed(c);
    all.reasoning += d.reasoning;
    all.content += d.content;
  }
  auto d = s.finish();
  all.reasoning += d.reasoning;
  all.content += d.content;
  return all;
}

// Every split of `text` into two and into single characters gives the same result.
void expect_all_chunkings(bool start_in_reasoning, const std::string& text,
                          const std::string& reasoning, const std::string& content) {
  auto whole = run(ReasoningSplitter(start_in_reasoning), {text});
  EXPECT_EQ(whole.reasoning, reasoning);
  EXPECT_EQ(whole.content, content);
  for (size_t k = 0; k <= text.size(); ++k) {
    auto d = run(ReasoningSplitter(start_in_reasoning), {text.substr(0, k), text.substr(k)});
    EXPECT_EQ(d.reasoning, reasoning) << "split at " << k;
    EXPECT_EQ(d.content, content) << "split at " << k;
  }
  std::vector<std::string> bytes;
  for (char ch : text) bytes.emplace_back(1, ch);
  auto d = run(ReasoningSplitter(start_in_reasoning), bytes);
  EXPECT_EQ(d.reasoning, reasoning);
  EXPECT_EQ(d.content, content);
}

// Whether a rendered prompt leaves generation inside the reasoning (R1's template ends it with
// "<think>\n"); the server and `whale chat` both pick the splitter's start state with it.
TEST(Reasoning, PromptOpensReasoning) {
  EXPECT_TRUE(prompt_opens_reasoning("<｜User｜>hi<｜Assistant｜><think>\n"));
  EXPECT_TRUE(prompt_opens_reasoning("<think>"));
  EXPECT_TRUE(prompt_opens_reasoning("x<think> \t\r\n\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<｜User｜>hi<｜Assistant｜>"));
  EXPECT_FALSE(prompt_opens_reasoning("<think>done</think>\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<think>x"));
  EXPECT_FALSE(prompt_opens_reasoning("think>"));
  EXPECT_FALSE(prompt_opens_reasoning(""));
  EXPECT_FALSE(prompt_opens_reasoning(" \n"));
  EXPECT_TRUE(prompt_opens_reasoning("a<reason>\n", "<reason>"));
  EXPECT_FALSE(prompt_opens_reasoning("a<think>\n", "<reason>"));
}

TEST(Reasoning, R1PromptStartsInsideThinking) {
  expect_all_chunkings(true, "Let me add 2 and 3.\n</think>\n\nThe answer is 5.",
                       "Let me add 2 and 3.\n", "The answer is 5.");
}

TEST(Reasoning, ModelOpensTheTagItself) {
  expect_all_chunkings(false, "<think>\nhmm</think>\n\nHi!", "hmm", "Hi!");
  expect_all_chunkings(false, "\n<think>x</think>y", "x", "y");
}

TEST(Reasoning, NoTagsIsAllContent) {
  expect_all_chunkings(false, "Just an answer, no <thinking> here.", "", "Just an answer, no <thinking> here.");
  expect_all_chunkings(false, "<thin", "", "<thin");
}

TEST(Reasoning, UnclosedReasoningStaysReasoning) {
  expect_all_chunkings(true, "still thinking </thi", "still thinking </thi", "");
}

TEST(Reasoning, OnlyFirstBlockIsSplit) {
  expect_all_chunkings(true, "a</think>b<think>c</think>d", "a", "b<think>c</think>d");
}

TEST(Reasoning, LookalikeTagsAreText) {
  expect_all_chunkings(true, "x </thinker> y</think>z", "x </thinker> y", "z");
}

TEST(Reasoning, EmptyReasoning) {
  expect_all_chunkings(true, "</think>\n\nanswer", "", "answer");
  expect_all_chunkings(false, "<think>\n\n</think>\n\nanswer", "", "answer");
}

}  // namespace
}  // namespace whale
