// OpenAI request parsing: every kind of bad input maps to the right status, param and code;
// good input (including fields we ignore) parses to the typed request. Stop-string hold-back.
#include <gtest/gtest.h>

#include <string>

#include "server/openai_protocol.h"
#include "server/stop_strings.h"

using namespace whale::server;

namespace {

// The ApiError a body raises (fails the test when it parses).
ApiError chat_error(const std::string& body) {
  try {
    parse_chat_completion_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "parsed without error: " << body;
  return ApiError(0, "");
}

ApiError text_error(const std::string& body) {
  try {
    parse_text_completion_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "parsed without error: " << body;
  return ApiError(0, "");
}

const std::string kMsgs = R"("messages":[{"role":"user","content":"hi"}])";

std::string chat(const std::string& extra) { return "{" + kMsgs + (extra.empty() ? "" : "," + extra) + "}"; }

}  // namespace

TEST(ServerProtocol, ParsesAFullChatRequest) {
  auto r = parse_chat_completion_request(R"({
    "model": "whale", "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "user", "content": "hi"},
      {"role": "assistant", "content": "hello"},
      {"role": "user", "content": "again"}],
    "max_completion_tokens": 12, "temperature": 0, "top_p": 0.5, "seed": 42, "stop": ["x", ""],
    "stream": true, "stream_options": {"include_usage": true},
    "frequency_penalty": 0, "logit_bias": {}, "user": "u", "some_future_field": [1, 2]})");
  EXPECT_EQ(r.opts.model, "whale");
  ASSERT_EQ(r.messages.size(), 5u);
  EXPECT_EQ(r.messages[1]["role"], "system");  // developer → system
  EXPECT_EQ(r.messages[1]["content"], "ab");   // text parts joined
  EXPECT_EQ(r.opts.max_tokens.value(), 12);
  EXPECT_EQ(r.opts.temperature, 0.0f);
  EXPECT_EQ(r.opts.top_p, 0.5f);
  EXPECT_EQ(r.opts.seed.value(), 42u);
  ASSERT_EQ(r.opts.stop.size(), 1u);  // empty strings dropped
  EXPECT_EQ(r.opts.stop[0], "x");
  EXPECT_TRUE(r.opts.stream);
  EXPECT_TRUE(r.opts.include_usage);
  EXPECT_TRUE(r.tools.is_null());
}

TEST(ServerProtocol, DefaultsAreOpenAIs) {
  auto r = parse_chat_completion_request(chat(R"("max_tokens": null, "temperature": null)"));
  EXPECT_FALSE(r.opts.max_tokens.has_value());
  EXPECT_EQ(r.opts.temperature, 1.0f);
  EXPECT_EQ(r.opts.top_p, 1.0f);
  EXPECT_EQ(r.opts.top_k, 0);
  EXPECT_FALSE(r.opts.seed.has_value());
  EXPECT_FALSE(r.opts.stream);
  auto s = parse_chat_completion_request(chat(R"("max_tokens": 7, "stop": "END", "seed": -1)"));
  EXPECT_EQ(s.opts.max_tokens.value(), 7);
  EXPECT_EQ(s.opts.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(s.opts.seed.value(), ~uint64_t(0));
}

TEST(ServerProtocol, MalformedBodies) {
  for (const std::string body : {"", "{", "{\"messages\": [}", "[1,2]", "\"text\"", "null", "{} trailing"}) {
    ApiError e = chat_error(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.type(), "invalid_request_error") << body;
    EXPECT_EQ(e.code(), "invalid_json") << body;
  }
}

TEST(ServerProtocol, InvalidUtf8IsRejected) {
  // Raw bytes that are not UTF-8, an overlong encoding, and a lone surrogate escape.
  for (const std::string& bad : {std::string("\xff\xfe"), std::string("\xc0\xaf"), std::string("\\ud800")}) {
    ApiError e = chat_error(R"({"messages":[{"role":"user","content":")" + bad + R"("}]})");
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.code(), "invalid_json");
  }
}

TEST(ServerProtocol, MessagesAreChecked) {
  struct Case {
    std::string body, param;
  } cases[] = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [1]})", "messages[0]"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": 3, "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": null}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
       "messages[0].content[0]"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})", "messages[0].content[0].text"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": {}}]})", "messages[1].content"},
  };
  for (const auto& c : cases) {
    ApiError e = chat_error(c.body);
    EXPECT_EQ(e.status(), 400) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body;
  }
  // An assistant turn with tool calls may have null content.
  auto r = parse_chat_completion_request(
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": null, "tool_calls": []}]})");
  EXPECT_TRUE(r.messages[1]["content"].is_null());
}

TEST(ServerProtocol, WrongTypesAndRangesNameTheParam) {
  struct Case {
    std::string extra, param;
  } cases[] = {
      {R"("model": 5)", "model"},
      {R"("max_tokens": "10")", "max_tokens"},
      {R"("max_tokens": 0)", "max_tokens"},
      {R"("max_tokens": -5)", "max_tokens"},
      {R"("max_tokens": 2.5)", "max_tokens"},
      {R"("max_tokens": 1e300)", "max_tokens"},
      {R"("max_completion_tokens": true)", "max_completion_tokens"},
      {R"("temperature": "hot")", "temperature"},
      {R"("temperature": 2.5)", "temperature"},
      {R"("temperature": -0.1)", "temperature"},
      {R"("top_p": 1.5)", "top_p"},
      {R"("top_k": -1)", "top_k"},
      {R"("seed": "x")", "seed"},
      {R"("seed": 1.5)", "seed"},
      {R"("stop": 5)", "stop"},
      {R"("stop": ["a", 1])", "stop"},
      {R"("stop": ["a", "b", "c", "d", "e"])", "stop"},
      {R"("stream": "yes")", "stream"},
      {R"("stream": true, "stream_options": 1)", "stream_options"},
      {R"("stream": true, "stream_options": {"include_usage": "y"})", "include_usage"},
      {R"("stream_options": {"include_usage": true})", "stream_options"},
      {R"("n": 2)", "n"},
      {R"("n": "1")", "n"},
      {R"("tools": {})", "tools"},
  };
  for (const auto& c : cases) {
    ApiError e = chat_error(chat(c.extra));
    EXPECT_EQ(e.status(), 400) << c.extra;
    EXPECT_EQ(e.param(), c.param) << c.extra;
    EXPECT_EQ(e.type(), "invalid_request_error") << c.extra;
    EXPECT_NE(std::string(e.what()).find(c.param), std::string::npos) << e.what();
  }
}

TEST(ServerProtocol, TextCompletionPrompts) {
  auto a = parse_text_completion_request(R"({"prompt": "Once"})");
  EXPECT_EQ(a.prompt, "Once");
  EXPECT_FALSE(a.has_ids);
  auto b = parse_text_completion_request(R"({"prompt": ["Once"]})");
  EXPECT_EQ(b.prompt, "Once");
  auto c = parse_text_completion_request(R"({"prompt": [1, 2, 3]})");
  EXPECT_TRUE(c.has_ids);
  EXPECT_EQ(c.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  auto d = parse_text_completion_request(R"({"prompt": [[4, 5]]})");
  EXPECT_EQ(d.prompt_ids, (std::vector<int32_t>{4, 5}));
  for (const std::string body : {R"({})", R"({"prompt": ""})", R"({"prompt": []})", R"({"prompt": 5})",
                                 R"({"prompt": ["a", "b"]})", R"({"prompt": [1, -2]})", R"({"prompt": [1, "x"]})",
                                 R"({"prompt": [1, 4294967296]})", R"({"prompt": {}})"}) {
    ApiError e = text_error(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), "prompt") << body;
  }
}

TEST(ServerProtocol, ErrorBodyHasOpenAIsShape) {
  ApiError e(401, "no key", "", "invalid_api_key");
  EXPECT_EQ(e.body().dump(),
            R"({"error":{"message":"no key","type":"authentication_error","param":null,"code":"invalid_api_key"}})");
  EXPECT_EQ(ApiError(413, "big").type(), "invalid_request_error");
  EXPECT_EQ(ApiError(503, "busy").type(), "server_error");
  EXPECT_EQ(ApiError(400, "x", "temperature").body()["error"]["param"], "temperature");
}

TEST(StopStrings, HoldsBackPartialMatchesAndCutsAtTheFirstMatch) {
  StopStringMatcher m({"STOP", "\n\n"});
  EXPECT_EQ(m.feed("hello S"), "hello ");  // "S" could begin STOP
  EXPECT_EQ(m.feed("T"), "");
  EXPECT_EQ(m.feed("x"), "STx");           // it did not
  EXPECT_EQ(m.feed("abc\n"), "abc");
  EXPECT_EQ(m.feed("\nrest"), "");         // "\n\n" matched across chunks
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.feed("more"), "");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopStrings, MatchInsideOneChunkAndRelease) {
  StopStringMatcher m({"world"});
  EXPECT_EQ(m.feed("hello world and more"), "hello ");
  EXPECT_TRUE(m.matched());
  StopStringMatcher n({"abc"});
  EXPECT_EQ(n.feed("xxab"), "xx");
  EXPECT_EQ(n.finish(), "ab");  // end without a match releases the tail
  EXPECT_FALSE(n.matched());
  StopStringMatcher none({});
  EXPECT_EQ(none.feed("anything"), "anything");
  // Multi-byte stop string: the hold-back never splits a character.
  StopStringMatcher u({"é!"});
  EXPECT_EQ(u.feed("caf\xc3\xa9"), "caf");
  EXPECT_EQ(u.feed("?"), "\xc3\xa9?");
}
