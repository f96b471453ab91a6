// data/text.h — UTF-8 validation and repair, binary detection, Unicode NFC + whitespace normalisation,
// the 64-bit text hash used for exact dedup and the train/validation split, word iteration.
// defines: utf8_decode, count_invalid_utf8, repair_utf8, looks_binary, nfc, normalize_whitespace,
//          normalize_text, hash64, mix64, split_words, is_alpha, is_space
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace baleine::data {

// Decodes one code point at s[i]. Returns the sequence length (1..4), or 0 when the bytes there are not
// well-formed UTF-8 (overlongs, surrogates, > U+10FFFF and truncated sequences are all invalid).
int utf8_decode(std::string_view s, size_t i, char32_t* cp);
void utf8_append(std::string& out, char32_t cp);

// Number of bytes that are not part of a well-formed sequence.
size_t count_invalid_utf8(std::string_view s);
// Replaces each maximal ill-formed subpart with U+FFFD (the W3C/Unicode "maximal subpart" practice).
std::string repair_utf8(std::string_view s, size_t* n_invalid = nullptr);

// True for content that is not text: any NUL byte, or more than max_invalid_ratio of the bytes invalid UTF-8.
bool looks_binary(std::string_view bytes, double max_invalid_ratio = 0.3);

// Unicode NFC (ICU). Input must be valid UTF-8; ASCII takes a fast path.
std::string nfc(std::string_view utf8);

// CRLF and lone CR -> LF; form feed and vertical tab -> LF; other C0 controls and DEL removed (tab kept);
// trailing spaces/tabs stripped on every line; runs of more than 2 blank lines collapsed to 2; leading and
// trailing blank lines removed.
std::string normalize_whitespace(std::string_view s);

// nfc(normalize_whitespace(s)): the canonical form every later stage (hashes, filters, tokens) sees.
std::string normalize_text(std::string_view s);

// Fast, well-mixed 64-bit hash (8-byte blocks through a multiply-xorshift mixer).
uint64_t hash64(std::string_view s, uint64_t seed = 0);
uint64_t mix64(uint64_t x);

// Unicode letter / white space (ICU properties).
bool is_alpha(char32_t cp);
bool is_space(char32_t cp);

// Whitespace-separated words of s (views into s).
std::vector<std::string_view> split_words(std::string_view s);

}  // namespace baleine::data
