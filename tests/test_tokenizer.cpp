// Tokenizers: every case of ../shared/fixtures/tokenizers/*/{encode,decode}.jsonl (ids and texts
// of Hugging Face tokenizers), streaming decode = one-shot decode, GGUF metadata = tokenizer.json,
// malformed inputs -> whale::Error, plus throughput on one thread.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "core/error.h"
#include "fixtures.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "text/pretokenizer.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace whale {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* const kFamilies[] = {"deepseek-v3", "qwen", "llama3"};

std::string tok_dir(const std::string& family) {
  return test::fixtures_dir() + "/tokenizers/" + family;
}

fs::path temp_dir() {
  static fs::path d = [] {
    fs::path p = fs::temp_directory_path() / ("whale_tok_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// Each tokenizer.json is ~10 MB: load each once for the whole test program.
const Tokenizer& hf_tokenizer(const std::string& family) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto& t = cache[family];
  if (!t) t = Tokenizer::from_hf(tok_dir(family));
  return *t;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

const std::vector<json>& encode_cases(const std::string& family) {
  static std::map<std::string, std::vector<json>> cache;
  auto& v = cache[family];
  if (v.empty()) v = read_jsonl(tok_dir(family) + "/encode.jsonl");
  return v;
}
const std::vector<json>& decode_cases(const std::string& family) {
  static std::map<std::string, std::vector<json>> cache;
  auto& v = cache[family];
  if (v.empty()) v = read_jsonl(tok_dir(family) + "/decode.jsonl");
  return v;
}

std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

// Runs every encode case through `tok`; returns the number that match.
size_t check_encode(const Tokenizer& tok, const std::vector<json>& cases, const std::string& what) {
  size_t pass = 0, shown = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const bool add = c["add_special_tokens"];
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.encode(text, add);
    if (got == want) {
      ++pass;
    } else if (shown++ < 10) {
      ADD_FAILURE() << what << " encode [" << c["category"].get<std::string>() << "] "
                    << json(text).dump() << " add_special=" << add << "\n  want " << show_ids(want)
                    << "\n  got  " << show_ids(got);
    }
  }
  return pass;
}

size_t check_decode(const Tokenizer& tok, const std::vector<json>& cases, const std::string& what) {
  size_t pass = 0, shown = 0;
  for (const auto& c : cases) {
    const std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
    const bool skip = c["skip_special_tokens"];
    const std::string want = c["text"];
    const std::string got = tok.decode(ids, skip);
    if (got == want) {
      ++pass;
    } else if (shown++ < 10) {
      ADD_FAILURE() << what << " decode [" << c["category"].get<std::string>() << "] "
                    << show_ids(ids) << " skip=" << skip << "\n  want " << json(want).dump()
                    << "\n  got  " << json(got).dump();
    }
  }
  return pass;
}

// Feeds ids one at a time; every piece must be valid UTF-8 and the concatenation = decode().
::testing::AssertionResult stream_equals_decode(const Tokenizer& tok, const std::vector<int32_t>& ids,
                                                bool skip) {
  StreamDecoder sd(tok, skip);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    if (!utf8::is_valid(piece))
      return ::testing::AssertionFailure() << "stream emitted invalid UTF-8 for " << show_ids(ids);
    all += piece;
  }
  std::string last = sd.flush();
  if (!utf8::is_valid(last))
    return ::testing::AssertionFailure() << "flush emitted invalid UTF-8 for " << show_ids(ids);
  all += last;
  const std::string want = tok.decode(ids, skip);
  if (all != want)
    return ::testing::AssertionFailure() << "stream " << json(all).dump() << " != decode "
                                         << json(want).dump() << " for " << show_ids(ids);
  return ::testing::AssertionSuccess();
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("NOT a whale::Error: ") + e.what();
  }
  return "no error";
}

// ---- fixtures: tokenizer.json ----------------------------------------------------------------
class TokenizerFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenizerFixture, EncodeMatchesReference) {
  const std::string fam = GetParam();
  const auto& cases = encode_cases(fam);
  ASSERT_GT(cases.size(), 300u);
  const size_t pass = check_encode(hf_tokenizer(fam), cases, fam);
  std::printf("[ tokenizer ] %s encode.jsonl: %zu/%zu\n", fam.c_str(), pass, cases.size());
  EXPECT_EQ(pass, cases.size());
}

TEST_P(TokenizerFixture, DecodeMatchesReference) {
  const std::string fam = GetParam();
  const auto& cases = decode_cases(fam);
  ASSERT_GT(cases.size(), 150u);
  const size_t pass = check_decode(hf_tokenizer(fam), cases, fam);
  std::printf("[ tokenizer ] %s decode.jsonl: %zu/%zu\n", fam.c_str(), pass, cases.size());
  EXPECT_EQ(pass, cases.size());
}

TEST_P(TokenizerFixture, StreamingEqualsOneShot) {
  const std::string fam = GetParam();
  const Tokenizer& tok = hf_tokenizer(fam);
  size_t n = 0;
  for (const auto& c : decode_cases(fam)) {
    EXPECT_TRUE(stream_equals_decode(tok, c["ids"].get<std::vector<int32_t>>(), c["skip_special_tokens"]));
    ++n;
  }
  for (const auto& c : encode_cases(fam)) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_TRUE(stream_equals_decode(tok, ids, false));
    EXPECT_TRUE(stream_equals_decode(tok, ids, true));
  }
  // Random ids (partial UTF-8 characters, specials, clean-up patterns across tokens).
  std::mt19937 rng(1234);
  std::vector<int32_t> interesting;
  for (const char* s : {" ", " .", "'", " '", "n", " n", "'t", "'s", "ve", "re", "m", "!", "?", ","}) {
    for (int32_t id : tok.encode(s, false)) interesting.push_back(id);
  }
  std::uniform_int_distribution<int32_t> any(0, int32_t(tok.n_vocab()) + 5);
  for (int rep = 0; rep < 400; ++rep) {
    std::vector<int32_t> ids(1 + rng() % 24);
    for (auto& id : ids) id = (rng() % 2) ? interesting[rng() % interesting.size()] : any(rng);
    EXPECT_TRUE(stream_equals_decode(tok, ids, rep % 2));
  }
  std::printf("[ tokenizer ] %s streaming: %zu decode cases + %zu encode cases + 400 random\n",
              fam.c_str(), n, encode_cases(fam).size());
}

TEST_P(TokenizerFixture, RoundTripAndInvariants) {
  const std::string fam = GetParam();
  const Tokenizer& tok = hf_tokenizer(fam);
  for (const auto& c : encode_cases(fam)) {
    std::string text = c["text"];
    std::string want = text;
    if (fam == "qwen") want = utf8::normalize(text, utf8::NormForm::NFC);
    if (tok.clean_up_tokenization_spaces()) want = clean_up_tokenization(want);
    EXPECT_EQ(tok.decode(tok.encode(text, false), false), want) << json(text).dump();
  }
  // Specials / configuration as in the reference configs.
  if (fam == "deepseek-v3") {
    EXPECT_EQ(tok.bos(), 0);
    EXPECT_EQ(tok.eos(), 1);
    EXPECT_EQ(tok.n_vocab(), 128815);
    EXPECT_EQ(tok.encode("<｜begin▁of▁sentence｜>hi", true).front(), 0);
    EXPECT_EQ(tok.encode("<｜begin▁of▁sentence｜>hi", true)[1], 0);  // BOS twice
    EXPECT_TRUE(tok.is_special(0));
    EXPECT_FALSE(tok.is_special(*tok.find_token("<｜User｜>")));
    EXPECT_TRUE(tok.is_added(*tok.find_token("<｜User｜>")));
  } else if (fam == "llama3") {
    EXPECT_EQ(tok.bos(), 128000);
    EXPECT_EQ(tok.eos(), 128009);
    EXPECT_EQ(tok.special_prefix(), std::vector<int32_t>{128000});
    EXPECT_TRUE(tok.clean_up_tokenization_spaces());
  } else {
    EXPECT_EQ(tok.bos(), -1);
    EXPECT_EQ(tok.eos(), 151645);
    EXPECT_TRUE(tok.special_prefix().empty());
    EXPECT_FALSE(tok.is_special(*tok.find_token("<think>")));
  }
  EXPECT_EQ(tok.find_token("Ġthe").has_value(), true);
  EXPECT_EQ(tok.token_bytes(*tok.find_token("Ġthe")), " the");
  EXPECT_EQ(tok.token_text(*tok.find_token("Ġthe")), "Ġthe");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{-5, int32_t(tok.n_vocab()), 1 << 30}, false), "");
}

TEST_P(TokenizerFixture, LongAndHostileInputs) {
  const std::string fam = GetParam();
  const Tokenizer& tok = hf_tokenizer(fam);
  const std::vector<std::string> texts = {
      std::string(1 << 20, ' '),
      std::string(300000, 'a'),
      std::string(200000, '7'),
      std::string(200000, '\n'),
      std::string(100000, '!'),
      [] { std::string s; for (int i = 0; i < 50000; ++i) s += "é漢😀 \r\n\t"; return s; }(),
      [] { std::string s; for (int i = 0; i < 20000; ++i) s += "<|<｜<think"; return s; }(),
  };
  for (const auto& t : texts) {
    const auto ids = tok.encode(t, true);
    std::string want = t;
    if (tok.clean_up_tokenization_spaces()) want = clean_up_tokenization(want);
    EXPECT_EQ(tok.decode(ids, true), want) << "length " << t.size();
  }
  EXPECT_TRUE(tok.encode("", false).empty());
  EXPECT_EQ(tok.encode("", true), tok.special_prefix());
  // Invalid UTF-8 is an error, not a crash.
  for (const std::string& bad : std::vector<std::string>{"\xff", "abc\xc3", "\xc0\xaf", "\xed\xa0\x80", "ok\xf4\x90\x80\x80",
                          "\x80", std::string("a\0b\xfe", 4)}) {
    const std::string msg = error_of([&] { tok.encode(bad, false); });
    EXPECT_NE(msg.find("not valid UTF-8"), std::string::npos) << msg;
  }
  EXPECT_EQ(tok.encode(std::string("a\0b", 3), false), tok.encode(std::string("a\0b", 3), false));
}

TEST_P(TokenizerFixture, ThreadSafe) {
  const std::string fam = GetParam();
  const Tokenizer& tok = hf_tokenizer(fam);
  std::string text;
  for (const auto& c : encode_cases(fam)) text += c["text"].get<std::string>() + "\n";
  const auto want = tok.encode(text, true);
  std::vector<std::thread> th;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      int good = 1;
      for (int r = 0; r < 5; ++r) good &= tok.encode(text, true) == want;
      ok[t] = good;
    });
  for (auto& t : th) t.join();
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(ok[t]);
}

INSTANTIATE_TEST_SUITE_P(Families, TokenizerFixture, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// ---- GGUF ------------------------------------------------------------------------------------
// Writes the tokenizer metadata llama.cpp's converter would write for a tokenizer.json.
std::string write_gguf_like_converter(const std::string& family, const std::string& pre,
                                      bool add_bos) {
  const json j = json::parse(test::read_text(tok_dir(family) + "/tokenizer.json"));
  const Tokenizer& tok = hf_tokenizer(family);
  std::vector<std::string> tokens(size_t(tok.n_vocab()));
  std::vector<int32_t> types(tokens.size(), 1);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t id = int32_t(i);
    if (!tok.is_valid_id(id)) {
      tokens[i] = "[PAD" + std::to_string(i) + "]";
      types[i] = 5;
    } else {
      tokens[i] = tok.token_text(id);
      if (tok.is_added(id)) types[i] = tok.is_special(id) ? 3 : 4;
    }
  }
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>()
                                   : m[0].get<std::string>() + " " + m[1].get<std::string>());
  GgufWriter w;
  w.set_string("general.architecture", "test");
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_array_str("tokenizer.ggml.tokens", tokens);
  w.set_array_i32("tokenizer.ggml.token_type", types);
  w.set_array_str("tokenizer.ggml.merges", merges);
  if (tok.bos() >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.bos()));
  w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.eos()));
  w.set_bool("tokenizer.ggml.add_bos_token", add_bos);
  const std::string path = (temp_dir() / (family + ".gguf")).string();
  w.write(path);
  return path;
}

TEST(TokenizerGguf, FullTokenizersFromConvertedMetadata) {
  struct Case {
    const char* family;
    const char* pre;
    bool add_bos;
  };
  for (const Case c : {Case{"deepseek-v3", "deepseek-v3", true}, Case{"qwen", "qwen2", false},
                       Case{"llama3", "llama-bpe", true}}) {
    SCOPED_TRACE(c.family);
    const std::string path = write_gguf_like_converter(c.family, c.pre, c.add_bos);
    GgufFile f(path);
    auto tok = Tokenizer::from_gguf(f);
    const auto& enc = encode_cases(c.family);
    const auto& dec = decode_cases(c.family);
    const size_t pe = check_encode(*tok, enc, std::string("gguf ") + c.family);
    const size_t pd = check_decode(*tok, dec, std::string("gguf ") + c.family);
    std::printf("[ tokenizer ] %s via GGUF (pre=%s): encode %zu/%zu, decode %zu/%zu\n", c.family,
                c.pre, pe, enc.size(), pd, dec.size());
    EXPECT_EQ(pe, enc.size());
    EXPECT_EQ(pd, dec.size());
    EXPECT_EQ(tok->bos(), hf_tokenizer(c.family).bos() >= 0 ? hf_tokenizer(c.family).bos() : -1);
    EXPECT_EQ(tok->eos(), hf_tokenizer(c.family).eos());
    fs::remove(path);
  }
}

TEST(TokenizerGguf, TinyModelsAgreeWithTheirTokenizerJson) {
  std::vector<std::string> texts;
  std::set<std::string> seen;
  for (const char* fam : kFamilies)
    for (const auto& c : encode_cases(fam))
      if (seen.insert(c["text"].get<std::string>()).second) texts.push_back(c["text"]);
  texts.push_back("<｜begin▁of▁sentence｜><｜User｜>the quick brown fox<｜Assistant｜><think>\nok</think>");
  texts.push_back("<unused500> <|EOT|><｜▁pad▁｜>every can jumps");
  size_t n_models = 0;
  for (const auto& e : fs::directory_iterator(test::fixtures_dir() + "/models")) {
    const fs::path gguf = e.path() / "model-bf16.gguf";
    if (!fs::exists(gguf) || !fs::exists(e.path() / "hf" / "tokenizer.json")) continue;
    SCOPED_TRACE(e.path().filename().string());
    ++n_models;
    auto hf = Tokenizer::from_hf((e.path() / "hf").string());
    GgufFile f(gguf.string());
    auto gg = Tokenizer::from_gguf(f);
    EXPECT_EQ(hf->n_vocab(), 512);
    EXPECT_EQ(gg->n_vocab(), 512);
    EXPECT_EQ(gg->bos(), 504);
    EXPECT_EQ(gg->eos(), 505);
    size_t same = 0;
    for (const auto& t : texts) {
      for (bool add : {false, true}) {
        const auto a = hf->encode(t, add), b = gg->encode(t, add);
        EXPECT_EQ(a, b) << json(t).dump();
        same += a == b;
        for (bool skip : {false, true}) EXPECT_EQ(hf->decode(a, skip), gg->decode(a, skip));
      }
    }
    std::printf("[ tokenizer ] %s: GGUF = HF on %zu/%zu encodes\n",
                e.path().filename().string().c_str(), same, 2 * texts.size());
    // The tiny vocabulary's merges are actually exercised.
    EXPECT_EQ(hf->encode(" the quick", false).size(), 2u);
  }
  EXPECT_GE(n_models, 4u);
}

// ---- malformed inputs ----------------------------------------------------------------------------
std::string minimal_json(const std::string& model_extra = "", const std::string& pre = "") {
  const std::string pt = pre.empty()
                             ? R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})"
                             : pre;
  return R"({"normalizer":null,"pre_tokenizer":)" + pt +
         R"(,"decoder":{"type":"ByteLevel"},"added_tokens":[],"model":{"type":"BPE",)" +
         R"("vocab":{"a":0,"b":1,"ab":2})" + model_extra + "}}";
}

TEST(TokenizerErrors, MalformedTokenizerJson) {
  const std::string name = "/some/dir/tokenizer.json";
  auto err = [&](const std::string& text) {
    return error_of([&] { Tokenizer::from_hf_json(text, "", name); });
  };
  // Sanity: the minimal tokenizer works.
  auto ok = Tokenizer::from_hf_json(minimal_json(R"(,"merges":["a b"])"), "", name);
  EXPECT_EQ(ok->encode("ab", false), (std::vector<int32_t>{2}));
  EXPECT_EQ(ok->encode("aab", false), (std::vector<int32_t>{0, 2}));

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"pre_tokenizer":null})", "no \"model\""},
      {R"({"model":{"type":"WordPiece","vocab":{}}})", "WordPiece"},
      {minimal_json(R"(,"merges":["a c"])"), "'c' is not in the vocabulary"},
      {minimal_json(R"(,"merges":["b a"])"), "'ba' is not in the vocabulary"},
      {minimal_json(R"(,"merges":["ab"])"), "merges[0]"},
      {minimal_json(R"(,"merges":[["a"]])"), "merges[0]"},
      {minimal_json(R"(,"merges":"a b")"), "merges should be an array"},
      {minimal_json(R"(,"byte_fallback":true)"), "byte_fallback"},
      {minimal_json(R"(,"unk_token":"<unk>")"), "unk_token"},
      {minimal_json(R"(,"continuing_subword_prefix":"##")"), "continuing_subword_prefix"},
      {R"({"model":{"type":"BPE","vocab":[1,2]},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}})",
       "vocab should be an object"},
      {R"({"model":{"type":"BPE","vocab":{"a":"x"}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}})",
       "integer id"},
      {R"({"model":{"type":"BPE","vocab":{"a":-3}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}})",
       "out of range"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":"x","content":"y"}]})",
       "integer id"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":1}]})",
       "content"},
      {minimal_json("", R"({"type":"Whitespace"})"), "Whitespace"},
      {minimal_json("", R"({"type":"Split","pattern":{"Regex":"\\s"},"behavior":"Isolated","invert":false})"),
       "no ByteLevel"},
      {minimal_json("", R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(a"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]})"),
       "does not compile"},
      {minimal_json("", R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"a"},"behavior":"Contiguous"},{"type":"ByteLevel","use_regex":false}]})"),
       "Contiguous"},
      {minimal_json("", R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[a[b]]"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]})"),
       "nested character classes"},
      {minimal_json("", R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\u12"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]})"),
       "\\u escape"},
      {minimal_json("", R"({"type":"ByteLevel","add_prefix_space":true})"), "add_prefix_space"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"WordPiece"}})",
       "decoder type 'WordPiece'"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"normalizer":{"type":"Lowercase"}})",
       "Lowercase"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"special_tokens":{}}})",
       "<s>"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"special_tokens":{"<s>":{"ids":[7]}}}})",
       "id 7 is not in the vocabulary"},
      {R"({"model":{"type":"BPE","vocab":{}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}})",
       "empty vocabulary"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"added_tokens":{}})",
       "added_tokens should be an array"},
  };
  for (const auto& [text, expect] : cases) {
    const std::string msg = err(text);
    EXPECT_NE(msg.find(name), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(expect), std::string::npos) << "for " << text << "\n  got: " << msg;
  }
}

TEST(TokenizerAddedTokens, StripAndSingleWordFlags) {
  // Vocabulary: a, b, space (Ġ); added tokens <l> (lstrip), <r> (rstrip), <w> (single_word).
  const std::string j = R"({"normalizer":null,
    "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":false},
    "decoder":{"type":"ByteLevel"},
    "model":{"type":"BPE","vocab":{"a":0,"b":1,"Ġ":2},"merges":[]},
    "added_tokens":[
      {"id":3,"content":"<l>","special":true,"lstrip":true,"rstrip":false,"single_word":false,"normalized":false},
      {"id":4,"content":"<r>","special":false,"lstrip":false,"rstrip":true,"single_word":false,"normalized":false},
      {"id":5,"content":"<w>","special":false,"lstrip":false,"rstrip":false,"single_word":true,"normalized":false},
      {"id":6,"content":"<l>a","special":false,"lstrip":false,"rstrip":false,"single_word":false,"normalized":true}]})";
  auto tok = Tokenizer::from_hf_json(j, "", "inline");
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok->encode("a  <l>b", false), (V{0, 3, 1}));      // spaces before <l> absorbed
  EXPECT_EQ(tok->encode("a <r>  b", false), (V{0, 2, 4, 1}));  // spaces after <r> absorbed
  EXPECT_EQ(tok->encode("a <w> b", false), (V{0, 2, 5, 2, 1}));
  EXPECT_EQ(tok->encode("a<w> b", false), (V{0, 2, 1}));       // not a single word: '<w>' bytes unknown
  // Non-normalized tokens are cut out first, even where a normalized one would be longer.
  EXPECT_EQ(tok->encode("<l>a", false), (V{3, 0}));
  EXPECT_EQ(tok->decode(V{0, 3, 4, 5, 1}, true), "a<r><w>b");
  EXPECT_EQ(tok->decode(V{0, 3, 4, 5, 1}, false), "a<l><r><w>b");
  // Sparse ids are refused before any large allocation.
  const std::string sparse = R"({"model":{"type":"BPE","vocab":{"a":50000000}},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}})";
  EXPECT_NE(error_of([&] { Tokenizer::from_hf_json(sparse, "", "x"); }).find("too sparse"), std::string::npos);
}

TEST(TokenizerErrors, MalformedFiles) {
  const fs::path dir = temp_dir() / "bad_folder";
  fs::create_directories(dir);
  // Missing file / folder without tokenizer.json.
  std::string msg = error_of([&] { Tokenizer::from_hf((dir / "nope.json").string()); });
  EXPECT_NE(msg.find("nope.json"), std::string::npos) << msg;
  msg = error_of([&] { Tokenizer::from_hf(dir.string()); });
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  // Truncated tokenizer.json.
  const std::string full = test::read_text(test::fixtures_dir() + "/models/deepseek-v3-tiny/hf/tokenizer.json");
  { std::ofstream(dir / "tokenizer.json") << full.substr(0, full.size() / 2); }
  msg = error_of([&] { Tokenizer::from_hf(dir.string()); });
  EXPECT_NE(msg.find((dir / "tokenizer.json").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
  // Good tokenizer.json, bad tokenizer_config.json: the error names the config.
  { std::ofstream(dir / "tokenizer.json") << full; }
  { std::ofstream(dir / "tokenizer_config.json") << "{\"bos_token\": "; }
  msg = error_of([&] { Tokenizer::from_hf(dir.string()); });
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
  { std::ofstream(dir / "tokenizer_config.json") << R"({"tokenizer_class":"LlamaTokenizerFast","bos_token":"<nope>"})"; }
  msg = error_of([&] { Tokenizer::from_hf(dir.string()); });
  EXPECT_NE(msg.find("<nope>"), std::string::npos) << msg;
  // A valid config: LlamaTokenizerFast adds BOS.
  { std::ofstream(dir / "tokenizer_config.json") << R"({"tokenizer_class":"LlamaTokenizerFast","bos_token":{"content":"<｜begin▁of▁sentence｜>"},"eos_token":"<｜end▁of▁sentence｜>"})"; }
  auto tok = Tokenizer::from_hf((dir / "tokenizer.json").string());
  EXPECT_EQ(tok->bos(), 504);
  EXPECT_EQ(tok->eos(), 505);
  EXPECT_EQ(tok->encode("the", true).front(), 504);
  EXPECT_EQ(tok->encode("the", false).front(), tok->encode("the", true)[1]);
  fs::remove_all(dir);
}

TEST(TokenizerErrors, MalformedGguf) {
  auto base = [] {
    GgufWriter w;
    w.set_string("general.architecture", "test");
    w.set_string("tokenizer.ggml.model", "gpt2");
    std::vector<std::string> tokens;
    for (const char* t : {"a", "b", "ab"}) tokens.push_back(t);
    w.set_array_str("tokenizer.ggml.tokens", tokens);
    w.set_array_str("tokenizer.ggml.merges", {"a b"});
    return w;
  };
  const std::string path = (temp_dir() / "bad.gguf").string();
  auto err = [&](GgufWriter w) {
    w.write(path);
    GgufFile f(path);
    return error_of([&] { Tokenizer::from_gguf(f); });
  };
  {
    GgufWriter w = base();
    w.write(path);
    GgufFile f(path);
    auto tok = Tokenizer::from_gguf(f);
    EXPECT_EQ(tok->encode("aab", false), (std::vector<int32_t>{0, 2}));
  }
  struct C {
    std::function<void(GgufWriter&)> edit;
    std::string expect;
  };
  const std::vector<C> cases = {
      {[](GgufWriter& w) { w.set_string("tokenizer.ggml.model", "llama"); }, "'llama' is not supported"},
      {[](GgufWriter& w) { w.remove("tokenizer.ggml.model"); }, "no tokenizer.ggml.model"},
      {[](GgufWriter& w) { w.remove("tokenizer.ggml.tokens"); }, "tokenizer.ggml.tokens"},
      {[](GgufWriter& w) { w.set_array_i32("tokenizer.ggml.tokens", {1, 2}); }, "tokenizer.ggml.tokens"},
      {[](GgufWriter& w) { w.set_array_str("tokenizer.ggml.merges", {"a c"}); }, "'c' is not in the vocabulary"},
      {[](GgufWriter& w) { w.set_array_str("tokenizer.ggml.merges", {"abc"}); }, "merges[0]"},
      {[](GgufWriter& w) { w.set_string("tokenizer.ggml.pre", "falcon"); }, "'falcon' is not supported"},
      {[](GgufWriter& w) { w.set_array_i32("tokenizer.ggml.token_type", {1}); }, "token_type has 1"},
      {[](GgufWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 99); }, "out of range"},
      {[](GgufWriter& w) { w.set_bool("tokenizer.ggml.add_bos_token", true); }, "no bos_token_id"},
  };
  for (const auto& c : cases) {
    GgufWriter w = base();
    c.edit(w);
    const std::string msg = err(std::move(w));
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
  fs::remove(path);
}

// ---- building blocks --------------------------------------------------------------------------------
TEST(TokenizerUtf8, LossyMatchesWhatwg) {
  const std::string R = "\xEF\xBF\xBD";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Hello \xF0\x90\x80World", "Hello " + R + "World"},
      {"\xE0\x80", R + R},              // E0 needs A0..BF next
      {"\xED\xA0\x80", R + R + R},      // surrogate
      {"\xF4\x90\x80\x80", R + R + R + R},
      {"\xF0\x9F\x98", R},              // truncated emoji: one maximal subpart
      {"\xC0\xAF", R + R},
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
      {"a\xF0\x9F\x98" "b", "a" + R + "b"},
      {"\x80\x80", R + R},
      {"\xE2\x82\xAC\xFF", "\xE2\x82\xAC" + R},
      {"\xF1\x80\x80\xE1\x80\xC2", R + R + R},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(utf8::to_lossy(in), want) << "input of " << in.size() << " bytes";
    // Piecewise (streaming) decoding gives the same.
    for (size_t cut = 0; cut <= in.size(); ++cut) {
      std::string out, pending(in.substr(0, cut));
      const size_t used = utf8::append_lossy_partial(out, pending);
      pending = pending.substr(used) + in.substr(cut);
      utf8::append_lossy(out, pending);
      EXPECT_EQ(out, want) << "cut " << cut;
    }
  }
  EXPECT_TRUE(utf8::is_valid("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8::is_valid("\xF0\x9F\x98"));
  EXPECT_EQ(utf8::valid_prefix("abc\xC3"), 3u);
}

TEST(TokenizerUtf8, FastNfcEqualsUtf8proc) {
  std::mt19937 rng(7);
  const std::vector<std::pair<char32_t, char32_t>> pools = {
      {0x41, 0x7A},     {0xC0, 0x17F},    {0x300, 0x36F},   {0x1100, 0x11FF}, {0xAC00, 0xAC40},
      {0x980, 0x9FF},   {0xB00, 0xDFF},   {0xF900, 0xFA2F}, {0x2126, 0x212B}, {0xFF00, 0xFF60},
      {0x3040, 0x30FF}, {0x3099, 0x309A}, {0x1E00, 0x1EFF}, {0x0F00, 0x0FFF}, {0x11100, 0x1135F},
      {0x1D15E, 0x1D1C0}, {0x80, 0xFFFF}, {0x10000, 0x10FFFF}};
  size_t n_changed = 0;
  for (int rep = 0; rep < 20000; ++rep) {
    std::string t;
    const int len = 1 + int(rng() % 12);
    for (int k = 0; k < len; ++k) {
      const auto& [lo, hi] = pools[rng() % pools.size()];
      char32_t cp = lo + char32_t(rng() % (hi - lo + 1));
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      utf8::append(t, cp);
    }
    const std::string want = utf8::normalize_reference(t, utf8::NormForm::NFC);
    n_changed += want != t;
    ASSERT_EQ(utf8::normalize(t, utf8::NormForm::NFC), want) << json(t).dump();
  }
  EXPECT_GT(n_changed, 1000u);
}

TEST(TokenizerRegex, TranslationToPcre2) {
  EXPECT_EQ(translate_regex(R"([\u4e00-\u9fa5])"), R"([\x{4e00}-\x{9fa5}])");
  EXPECT_EQ(translate_regex(R"(\u{1F600}\U0001F600)"), R"(\x{1F600}\x{0001F600})");
  EXPECT_EQ(translate_regex(R"(\s+(?!\S))"), R"([\t\n\x0B\f\r\x{85}\p{Z}]+(?![^\t\n\x0B\f\r\x{85}\p{Z}]))");
  EXPECT_EQ(translate_regex(R"([^\s\p{L}])"), R"([^\t\n\x0B\f\r\x{85}\p{Z}\p{L}])");
  EXPECT_EQ(translate_regex(R"(\\s\[\s])"), R"(\\s\[[\t\n\x0B\f\r\x{85}\p{Z}]])");
  EXPECT_EQ(translate_regex(R"([]a])"), R"([\]a])");
  EXPECT_EQ(translate_regex(R"(\h)"), R"([0-9A-Fa-f])");
  // U+180E is not whitespace for Oniguruma (nor Unicode >= 6.3), though PCRE2's \s matches it.
  RegexScratch sc;
  Regex re(R"(\s+)", false);
  size_t b = 0, e = 0;
  EXPECT_FALSE(re.find("\xE1\xA0\x8E", 0, b, e, sc));
  EXPECT_TRUE(re.find("a\xE3\x80\x80" "b", 0, b, e, sc));  // U+3000 is
  EXPECT_EQ(b, 1u);
  EXPECT_EQ(e, 4u);
  Regex ci(R"((?i:'s))", false);
  EXPECT_TRUE(ci.find("'S", 0, b, e, sc));
}

TEST(TokenizerCleanup, TransformersRules) {
  EXPECT_EQ(clean_up_tokenization("Hello , world . I do n't know , he 's here !"),
            "Hello, world. I don't know, he's here!");
  EXPECT_EQ(clean_up_tokenization("a ' b"), "a'b");
  EXPECT_EQ(clean_up_tokenization(" 'm 've 're n't"), "'m've'ren't");
  EXPECT_EQ(clean_up_tokenization("x  ' s"), "x's");  // " ' " first, then " 's"
}

// ---- throughput ----------------------------------------------------------------------------------------
// One thread, a large mixed text: all fixture texts of all families concatenated and repeated.
// WHALE_TOKENIZER_BENCH_MB sets the size (default 1; the report uses 5).
TEST(TokenizerBench, EncodeThroughput) {
  double mb = 1.0;
  if (const char* e = std::getenv("WHALE_TOKENIZER_BENCH_MB")) mb = std::atof(e);
  std::string unit;
  for (const char* fam : kFamilies)
    for (const auto& c : encode_cases(fam))
      if (c["add_special_tokens"] == false) unit += c["text"].get<std::string>() + "\n";
  std::string text;
  while (text.size() < size_t(mb * 1e6)) text += unit;
  for (const char* fam : kFamilies) {
    const Tokenizer& tok = hf_tokenizer(fam);
    std::vector<int32_t> ids;
    // Warm the word cache once, then time a second pass (steady state). Wall-clock and
    // thread CPU time (the latter is less disturbed by other processes on a busy machine).
    double best = 1e30, best_cpu = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      ids.clear();
      timespec c0{}, c1{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
      const auto t0 = std::chrono::steady_clock::now();
      tok.encode_into(text, false, ids);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
      const double cs = double(c1.tv_sec - c0.tv_sec) + 1e-9 * double(c1.tv_nsec - c0.tv_nsec);
      if (rep == 0) {
        std::printf("[ tokenizer ] %s: %.1f MB -> %zu tokens, first pass %.1f MB/s\n", fam,
                    text.size() / 1e6, ids.size(), text.size() / 1e6 / s);
        continue;
      }
      best = std::min(best, s);
      best_cpu = std::min(best_cpu, cs);
    }
    std::printf("[ tokenizer ] %s: encode %.1f MB/s wall, %.1f MB/s thread CPU time (one thread, %.1f MB)\n",
                fam, text.size() / 1e6 / best, text.size() / 1e6 / best_cpu, text.size() / 1e6);
    // Decoding back gives the text (up to NFC / clean-up).
    std::string want = text;
    if (std::string(fam) == "qwen") want = utf8::normalize(want, utf8::NormForm::NFC);
    if (tok.clean_up_tokenization_spaces()) want = clean_up_tokenization(want);
    EXPECT_EQ(tok.decode(ids, false), want);
  }
}

}  // namespace
}  // namespace whale
