#!/bin/bash
# g++ under LD_PRELOAD compiles and links a small multi-file C++ program
# (the driver, cc1plus, as, collect2 and ld all run on hakmem); the program
# then prints results known in advance, with and without hakmem.
# Under bazel test the script runs from the runfiles tree as tests/<target>.
here="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/tests/programs}"
source "${here:-$(dirname "$0")}/common.sh"
GXX=/usr/bin/g++
src="$TMP/src"
mkdir -p "$src"

cat >"$src/lib.h" <<'CC'
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

int CountPrimesBelow(int n);
long SumPrimesBelow(int n);
unsigned long long Fib(int n);

std::string BuildText(int words);
std::map<std::string, int> WordCounts(const std::string& text);

struct Shape {
  virtual ~Shape() = default;
  virtual long Area() const = 0;
};
std::vector<std::unique_ptr<Shape>> MakeShapes(int n);
CC

cat >"$src/numbers.cc" <<'CC'
#include <unordered_map>
#include <vector>

#include "lib.h"

static std::vector<bool> Sieve(int n) {
  std::vector<bool> composite(static_cast<size_t>(n), false);
  for (long i = 2; i * i < n; i++) {
    if (composite[i]) continue;
    for (long j = i * i; j < n; j += i) composite[j] = true;
  }
  return composite;
}

int CountPrimesBelow(int n) {
  const std::vector<bool> c = Sieve(n);
  int count = 0;
  for (int i = 2; i < n; i++) count += !c[i];
  return count;
}

long SumPrimesBelow(int n) {
  const std::vector<bool> c = Sieve(n);
  long sum = 0;
  for (int i = 2; i < n; i++) {
    if (!c[i]) sum += i;
  }
  return sum;
}

unsigned long long Fib(int n) {
  static std::unordered_map<int, unsigned long long> memo;
  if (n < 2) return static_cast<unsigned long long>(n);
  auto it = memo.find(n);
  if (it != memo.end()) return it->second;
  const unsigned long long v = Fib(n - 1) + Fib(n - 2);
  memo[n] = v;
  return v;
}
CC

cat >"$src/text.cc" <<'CC'
#include <sstream>

#include "lib.h"

std::string BuildText(int words) {
  std::string text;
  for (int i = 0; i < words; i++) {
    if (i > 0) text += ' ';
    text += "w" + std::to_string(i % 13);
  }
  return text;
}

std::map<std::string, int> WordCounts(const std::string& text) {
  std::map<std::string, int> counts;
  std::istringstream in(text);
  std::string word;
  while (in >> word) counts[word]++;
  return counts;
}
CC

cat >"$src/main.cc" <<'CC'
#include <algorithm>
#include <iostream>

#include "lib.h"

namespace {
struct Square : Shape {
  explicit Square(long s) : side(s) {}
  long Area() const override { return side * side; }
  long side;
};
struct Rect : Shape {
  explicit Rect(long s) : side(s) {}
  long Area() const override { return 2 * side * side; }
  long side;
};
}  // namespace

std::vector<std::unique_ptr<Shape>> MakeShapes(int n) {
  std::vector<std::unique_ptr<Shape>> shapes;
  for (int i = 0; i < n; i++) {
    const long s = i % 10 + 1;
    if (i % 2 == 0) {
      shapes.push_back(std::make_unique<Square>(s));
    } else {
      shapes.push_back(std::make_unique<Rect>(s));
    }
  }
  return shapes;
}

int main() {
  std::cout << "primes below 100000: " << CountPrimesBelow(100000) << "\n";
  std::cout << "sum of primes below 1000: " << SumPrimesBelow(1000) << "\n";
  std::cout << "fib(90): " << Fib(90) << "\n";
  const auto counts = WordCounts(BuildText(10000));
  std::cout << "words: " << counts.size() << " w0=" << counts.at("w0") << "\n";
  long area = 0;
  const auto shapes = MakeShapes(1000);
  for (const auto& s : shapes) area += s->Area();
  std::cout << "shapes: " << shapes.size() << " area " << area << "\n";
  std::vector<std::string> strings;
  for (int i = 0; i < 200000; i++) strings.push_back(std::to_string(i * 7919 % 100003));
  std::sort(strings.begin(), strings.end());
  std::cout << "sorted: " << (std::is_sorted(strings.begin(), strings.end()) ? "ok" : "bad")
            << " " << strings.front() << " " << strings.back() << "\n";
  std::cout << "done\n";
  return 0;
}
CC

cd "$src" || exit 1
for f in numbers text main; do
  run_preloaded "compile_$f" "$GXX" -std=c++17 -O2 -Wall -Werror -c "$f.cc" -o "$f.o"
  # The driver, cc1plus and as each loaded hakmem.
  n=$(loaded_count "$TMP/compile_$f.err")
  [ "$n" -ge 3 ] || fail "compile_$f: only $n process(es) ran with hakmem, want driver, cc1plus, as"
done
run_preloaded link "$GXX" numbers.o text.o main.o -o prog
[ -x prog ] || fail "no program linked"

run_preloaded prog ./prog
run_plain prog ./prog
expect_line prog "primes below 100000: 9592"
expect_line prog "sum of primes below 1000: 76127"
expect_line prog "fib(90): 2880067194370816120"
expect_line prog "words: 13 w0=770"
# Squares of odd sides 1..9 and rectangles 2*s*s of even sides 2..10, 100
# of each: 100*165 + 100*2*220.
expect_line prog "shapes: 1000 area 60500"
expect_line prog "done"
grep -q "^sorted: ok 0 99999$" "$TMP/prog.out" || fail "sorted line: $(grep sorted "$TMP/prog.out")"
same_output prog
finish
