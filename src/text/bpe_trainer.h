// Byte-level BPE training (the GPT-2 / Hugging Face `tokenizers` BpeTrainer algorithm) and the
// tokenizer files it produces:
//   tokenizer.json         model BPE (vocab + merges), no normalizer, pre-tokenizer Sequence
//                          [Split(Qwen2's regex: every digit alone — what arithmetic wants),
//                          ByteLevel(use_regex false)], ByteLevel decoder, added tokens
//   tokenizer_config.json  LlamaTokenizerFast, BOS/EOS as DeepSeek-R1 (BOS added when
//                          encoding with special tokens), R1's chat template
// Both our Tokenizer::from_hf and Hugging Face's tokenizers/transformers read them.
//
// Training: special tokens are cut out of the texts first (never learnt, never merged); the
// rest is pre-tokenized, each word mapped to GPT-2's byte alphabet, and words counted. Starting
// from the 256 byte symbols, the most frequent adjacent pair (over all word occurrences) is
// merged into a new symbol until the vocabulary is full or no pair occurs min_frequency times;
// ties go to the pair whose (left id, right id) is smallest, so training is deterministic.
//
// Vocabulary layout (DeepSeek's): 0 BOS, 1 EOS, 2 pad (special), then the 256 bytes, the
// merges, and last the chat tokens <｜User｜>, <｜Assistant｜>, <think>, </think> (added tokens
// that are not "special": they survive skip_special_tokens, as in R1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace whale {

struct BpeTrainerOptions {
  int64_t vocab_size = 1024;   // total, special and chat tokens included
  int64_t min_frequency = 2;   // a pair must occur at least this often to be merged
};

struct TrainedBpe {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  int64_t vocab_size = 0;      // actual (may be below the target when pairs run out)
  int64_t n_merges = 0;
};

TrainedBpe train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& opt);

// The special and chat tokens, in id order of their block (BOS, EOS, pad | User, Assistant,
// <think>, </think>).
const std::vector<std::string>& r1_special_tokens();
const std::vector<std::string>& r1_chat_tokens();

}  // namespace whale
