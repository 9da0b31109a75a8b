#!/bin/bash
# python3 (a C program: no libstdc++ at start-up) loads a C++ library with
# ctypes under LD_PRELOAD, whose operator new then runs out of memory: it
# must throw std::bad_alloc and run the new_handler as without hakmem, not
# abort. $2: the plugin (tests/programs/cxx_plugin.cc).
here="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/tests/programs}"
source "${here:-$(dirname "$0")}/common.sh"
PLUGIN="${2:?usage: $0 <libhakmem.so> <plugin.so>}"
case "$PLUGIN" in /*) ;; *) PLUGIN="$PWD/$PLUGIN" ;; esac
PY=/usr/bin/python3
script="import ctypes; ctypes.CDLL('$PLUGIN').plugin_run(ctypes.c_size_t(2**62))"

run_preloaded dlopen_cxx "$PY" -c "$script"
run_plain dlopen_cxx "$PY" -c "$script"
same_output dlopen_cxx
expect_line dlopen_cxx "plugin: caught std::bad_alloc"
expect_line dlopen_cxx "plugin: caught std::bad_alloc after the new_handler ran 2 times"
expect_line dlopen_cxx "plugin: nothrow new returned nullptr after the new_handler ran 2 times"
finish
