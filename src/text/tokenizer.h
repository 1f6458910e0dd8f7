// Byte-level BPE tokenizers (GPT-2 family): DeepSeek-V3/R1, Qwen2.5/Qwen3 (R1-Distill-Qwen),
// Llama 3 (R1-Distill-Llama), with the ids and texts of Hugging Face `tokenizers` (Python,
// through transformers' PreTrainedTokenizerFast).
//
// Sources:
//  * Tokenizer::from_hf: a Hugging Face tokenizer.json (or a folder holding one), plus
//    tokenizer_config.json next to it when present (bos_token, eos_token, add_bos_token,
//    add_eos_token, clean_up_tokenization_spaces, tokenizer_class).
//    tokenizer.json parts understood:
//      normalizer     null | NFC | NFD | NFKC | NFKD (utf8proc) | Sequence of those
//      pre_tokenizer  Sequence of Split {pattern Regex|String, behavior Isolated|Removed,
//                     invert} ending in ByteLevel {add_prefix_space false, use_regex: when
//                     true the GPT-2 regex is applied as one more split}
//      model          BPE {vocab, merges as "a b" strings or [a, b] pairs, ignore_merges,
//                     unk_token/fuse_unk}; byte_fallback, dropout,
//                     continuing_subword_prefix and end_of_word_suffix are rejected
//      decoder        ByteLevel (or a Sequence holding only ByteLevel)
//      post_processor null | ByteLevel | TemplateProcessing (single) | Bert/RobertaProcessing |
//                     Sequence of those
//      added_tokens   {id, content, special, lstrip, rstrip, normalized, single_word}
//    tokenizer_class LlamaTokenizerFast (or LlamaTokenizer) replaces the post-processor by
//    [bos if add_bos_token (default true)] $A [eos if add_eos_token], as transformers does:
//    DeepSeek-V3 therefore gets BOS even when the text already starts with BOS.
//  * Tokenizer::from_gguf: llama.cpp metadata. tokenizer.ggml.model must be "gpt2";
//    tokens / token_type (3 control -> special added token, 4 user-defined -> non-special
//    added token, anything else -> BPE vocabulary) / merges; tokenizer.ggml.pre picks the
//    pre-tokenizer:
//      "deepseek-v3"                          DeepSeek-V3's three splits
//      "qwen2", "deepseek-r1-qwen"            Qwen2 regex, NFC normalizer (as tokenizer.json)
//      "llama-bpe", "llama3", "llama-v3"      Llama 3 regex, ignore_merges, clean-up spaces
//      "default", "gpt2", absent              GPT-2 regex (HF ByteLevel use_regex=true; note
//                                             llama.cpp's own "default" split differs)
//    bos/eos from tokenizer.ggml.bos_token_id / eos_token_id; BOS/EOS are added by encode()
//    when add_special_tokens and tokenizer.ggml.add_bos_token / add_eos_token say so
//    (absent: BOS for deepseek-v3 and llama-bpe, as their HF configs do; no EOS).
//
// Encoding (HF order): added tokens are cut out of the raw text first (leftmost, longest
// match; lstrip / rstrip / single_word honoured); tokens flagged normalized=true are matched
// in the normalized pieces instead. The pieces are normalized, pre-tokenized, and each word is
// BPE-merged (lowest merge rank first, leftmost on ties; with ignore_merges a word that is a
// vocabulary token is emitted whole). add_special_tokens adds the post-processor's tokens.
// Text that is not valid UTF-8 is rejected with whale::Error.
//
// Decoding: ids -> bytes (ByteLevel reverse mapping; added tokens by their content, mapped
// the same way as HF does), special=true tokens dropped when skip_special_tokens, ids outside
// the vocabulary ignored (as HF), lossy UTF-8 (one U+FFFD per maximal invalid subsequence),
// then transformers' clean_up_tokenization when the tokenizer is configured for it.
//
// All const methods are thread-safe (the word cache is shared behind a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace whale {

class GgufFile;

class Tokenizer {
 public:
  // `path`: a tokenizer.json file, or a folder holding tokenizer.json. Errors name the file.
  static std::unique_ptr<Tokenizer> from_hf(const std::string& path);
  // The same from in-memory JSON texts; `config_json` may be empty (no tokenizer_config.json).
  // `name` is used in error messages.
  static std::unique_ptr<Tokenizer> from_hf_json(std::string_view tokenizer_json,
                                                 std::string_view config_json,
                                                 const std::string& name);
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& gguf);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Appends to `out` (saves an allocation per call in loops).
  void encode_into(std::string_view text, bool add_special_tokens,
                   std::vector<int32_t>& out) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  int32_t bos() const;  // -1 when the tokenizer has none
  int32_t eos() const;  // -1 when the tokenizer has none
  // Token ids encode() puts before / after the text when add_special_tokens is true.
  const std::vector<int32_t>& special_prefix() const;
  const std::vector<int32_t>& special_suffix() const;

  int64_t n_vocab() const;  // 1 + the largest id of the vocabulary and the added tokens
  bool is_valid_id(int32_t id) const;  // false for holes and ids out of range
  bool is_special(int32_t id) const;   // an added token with special=true
  bool is_added(int32_t id) const;     // any added token (special or not)
  // The token as the vocabulary spells it: the byte-level string for BPE tokens ("Ġthe"),
  // the content for added tokens. Empty for invalid ids.
  std::string token_text(int32_t id) const;
  // The bytes the token decodes to (" the"); may be part of a UTF-8 character.
  std::string_view token_bytes(int32_t id) const;
  // Id of an added token by content, else of a vocabulary token by its byte-level spelling.
  std::optional<int32_t> find_token(std::string_view content) const;
  bool clean_up_tokenization_spaces() const;
  const std::string& name() const;  // the file it was loaded from

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class StreamDecoder;
};

// Incremental decoding for streaming generation: push ids one at a time and get back only
// complete UTF-8 text (never part of a character). The concatenation of everything push()
// and flush() return equals Tokenizer::decode() of all ids pushed, including U+FFFD for
// invalid bytes and clean_up_tokenization_spaces (text that a later token could still change,
// e.g. a trailing " " before a possible ".", is held back until it is decided).
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);
  std::string push(int32_t id);
  std::string push(std::span<const int32_t> ids);
  // Emits what is held back (an incomplete character becomes U+FFFD) and resets.
  std::string flush();
  void reset();

 private:
  std::string take(bool final);
  const Tokenizer* tok_;
  bool skip_special_;
  std::string bytes_;  // undecoded bytes: an incomplete trailing character
  std::string text_;   // decoded text held back for clean-up
};

// transformers' clean_up_tokenization: " ." " ?" " !" " ," " ' " " n't" " 'm" " 's" " 've"
// " 're" lose their leading space (" ' " becomes "'"), replaced in that order, each
// non-overlapping left to right.
std::string clean_up_tokenization(std::string text);

}  // namespace whale
