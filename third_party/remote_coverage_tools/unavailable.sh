#!/bin/sh
echo "coverage is not available in hakmem's offline Bazel build" >&2
exit 1
