// Byte-level BPE training: see bpe_trainer.h.
#include "text/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/pretokenizer.h"
#include "text/utf8.h"

namespace whale {

namespace {

using ojson = nlohmann::ordered_json;

// GPT-2's byte alphabet: printable bytes stand for themselves, the others for U+0100 onwards.
std::vector<std::string> byte_alphabet() {
  std::vector<std::string> out(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) s += char(cp);
    else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    out[size_t(b)] = s;
  }
  return out;
}

// R1's chat template (deepseek-ai/DeepSeek-R1 tokenizer_config.json) without the tool-call
// branches: BOS, the system prompt, user / assistant turns with the reasoning cut from
// earlier answers, and a generation prompt that opens the reasoning.
const char* kChatTemplate =
    R"({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %})"
    R"({% set ns = namespace(system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %})"
    R"({% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}})"
    R"({%- for message in messages %}{%- if message['role'] == 'user' %}{{'<｜User｜>' + message['content']}})"
    R"({%- endif %}{%- if message['role'] == 'assistant' %}{% set content = message['content'] %})"
    R"({% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %})"
    R"({{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor -%})"
    R"({% if add_generation_prompt %}{{'<｜Assistant｜><think>\n'}}{% endif %})";

ojson added_token(int64_t id, const std::string& content, bool special) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false}, {"special", special}};
}

ojson config_token(const std::string& content) {
  return {{"__type", "AddedToken"}, {"content", content}, {"lstrip", false},
          {"normalized", false},   {"rstrip", false},    {"single_word", false}};
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

const std::vector<std::string>& r1_special_tokens() {
  static const std::vector<std::string> t = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"};
  return t;
}

const std::vector<std::string>& r1_chat_tokens() {
  static const std::vector<std::string> t = {"<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"};
  return t;
}

TrainedBpe train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& opt) {
  const auto& specials = r1_special_tokens();
  const auto& chat = r1_chat_tokens();
  const int64_t n_fixed = int64_t(specials.size() + 256 + chat.size());
  if (opt.vocab_size < n_fixed)
    fail("vocabulary size {} is below the {} byte and special tokens", opt.vocab_size, n_fixed);
  if (opt.min_frequency < 1) fail("min_frequency must be ≥ 1, not {}", opt.min_frequency);

  // 1. Words and their counts, special and chat tokens cut out first.
  std::vector<std::string> reserved = specials;
  reserved.insert(reserved.end(), chat.begin(), chat.end());
  PreTokenizer pre;
  pre.add_split(Regex(pretok::kQwen2, false), SplitBehavior::Isolated, false);
  RegexScratch scratch;
  std::unordered_map<std::string, int64_t> word_count;
  for (const std::string& text : texts) {
    if (!utf8::is_valid(text)) fail("tokenizer training text is not valid UTF-8");
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t hit = std::string::npos, len = 0;
      for (const std::string& r : reserved) {
        const size_t at = text.find(r, pos);
        if (at < hit || (at == hit && at != std::string::npos && r.size() > len)) hit = at, len = r.size();
      }
      const std::string_view piece(text.data() + pos, (hit == std::string::npos ? text.size() : hit) - pos);
      pre.for_each(piece, scratch, [&](std::string_view w) { ++word_count[std::string(w)]; });
      if (hit == std::string::npos) break;
      pos = hit + len;
    }
  }

  // 2. Symbols: ids 0..2 special, 3..258 the bytes, then merges.
  const std::vector<std::string> alphabet = byte_alphabet();
  std::vector<std::string> token(specials.begin(), specials.end());
  for (const std::string& a : alphabet) token.push_back(a);
  std::unordered_map<std::string, int32_t> id_of;
  for (size_t i = 0; i < token.size(); ++i) id_of[token[i]] = int32_t(i);
  const int32_t byte0 = int32_t(specials.size());

  std::vector<std::string> word_text;  // sorted, so training does not depend on hash order
  for (auto& [w, c] : word_count) word_text.push_back(w);
  std::sort(word_text.begin(), word_text.end());
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  for (const std::string& w : word_text) {
    std::vector<int32_t> s;
    for (unsigned char b : w) s.push_back(byte0 + b);
    words.push_back(std::move(s));
    counts.push_back(word_count[w]);
  }

  // 3. Pair counts, the words each pair occurs in, and a max-heap with lazy deletion.
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (size_t w = 0; w < words.size(); ++w)
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t k = pair_key(words[w][i], words[w][i + 1]);
      pair_count[k] += counts[w];
      where[k].push_back(int32_t(w));
    }
  using Entry = std::pair<int64_t, uint64_t>;  // count, key
  auto worse = [](const Entry& x, const Entry& y) {
    return x.first != y.first ? x.first < y.first : x.second > y.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  for (auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<std::string> merges;
  std::vector<int64_t> seen(words.size(), -1);
  const int64_t max_merges = opt.vocab_size - n_fixed;
  while (int64_t(merges.size()) < max_merges && !heap.empty()) {
    const auto [count, key] = heap.top();
    heap.pop();
    auto it = pair_count.find(key);
    if (it == pair_count.end() || it->second != count) continue;  // stale entry
    if (count < opt.min_frequency) break;
    const int32_t a = int32_t(key >> 32), b = int32_t(key & 0xFFFFFFFFu);
    const std::string merged = token[size_t(a)] + token[size_t(b)];
    int32_t c;
    if (auto f = id_of.find(merged); f != id_of.end()) {
      c = f->second;
    } else {
      c = int32_t(token.size());
      token.push_back(merged);
      id_of[merged] = c;
    }
    merges.push_back(token[size_t(a)] + " " + token[size_t(b)]);

    std::vector<uint64_t> changed;
    const std::vector<int32_t> occurs = std::move(where[key]);
    where.erase(key);
    for (int32_t w : occurs) {
      if (seen[size_t(w)] == int64_t(merges.size())) continue;
      seen[size_t(w)] = int64_t(merges.size());
      std::vector<int32_t>& s = words[size_t(w)];
      const int64_t n = counts[size_t(w)];
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        pair_count[k] -= n;
        changed.push_back(k);
      }
      std::vector<int32_t> out;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) out.push_back(c), ++i;
        else out.push_back(s[i]);
      }
      s = std::move(out);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        pair_count[k] += n;
        changed.push_back(k);
        if (k != key) where[k].push_back(w);
      }
    }
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    for (uint64_t k : changed) {
      const int64_t v = pair_count[k];
      if (v > 0) heap.push({v, k});
      else pair_count.erase(k);
    }
  }

  // 4. The files.
  ojson added = ojson::array();
  for (size_t i = 0; i < specials.size(); ++i) added.push_back(added_token(int64_t(i), specials[i], true));
  for (const std::string& t : chat) {
    added.push_back(added_token(int64_t(token.size()), t, false));
    token.push_back(t);
  }
  ojson vocab = ojson::object();
  for (size_t i = 0; i < token.size(); ++i) vocab[token[i]] = i;
  ojson tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pretok::kQwen2}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}}}};
  ojson cfg = {{"add_bos_token", true},
               {"add_eos_token", false},
               {"bos_token", config_token(specials[0])},
               {"eos_token", config_token(specials[1])},
               {"pad_token", config_token(specials[2])},
               {"unk_token", nullptr},
               {"clean_up_tokenization_spaces", false},
               {"legacy", true},
               {"model_max_length", 16384},
               {"tokenizer_class", "LlamaTokenizerFast"},
               {"chat_template", kChatTemplate}};
  return TrainedBpe{.tokenizer_json = tok.dump(1), .tokenizer_config_json = cfg.dump(1),
                    .vocab_size = int64_t(token.size()), .n_merges = int64_t(merges.size())};
}

}  // namespace whale
