"""Build settings shared by every hakmem library."""

load("@rules_cc//cc:defs.bzl", "cc_library")

# Hidden visibility: in libhakmem.so, internal globals (the registry table,
# the free key) are then reached without a GOT load on the fast paths; the
# override layer marks the exported allocator symbols explicitly.
# No PLT: the slow paths' calls into libc (memcpy, memmove, the clock, the
# locks) go straight through the GOT, resolved at load, instead of through
# a stub: 2M x 16 B built and freed 20 times, 0.43-0.46 -> 0.42 s; 16 B
# tear-down frees and 64 B builds -2%; the lanes and start-up unchanged.
# No exceptions: the allocator throws none (operator new's std::bad_alloc
# comes from libstdc++, see libc_override.cc), and code built with them
# references libstdc++'s unwind personality, which made libhakmem.so need
# libstdc++, libm and libgcc_s: 1.2 MB more RSS in every preloaded process
# (//hakmem:preload_deps_test).
HAKMEM_COPTS = ["-fvisibility=hidden", "-fno-plt", "-fno-exceptions"]

def hakmem_library(name, copts = [], **kwargs):
    """A cc_library of the allocator: hidden visibility, static linking only.

    Static only, because hidden symbols must not cross a shared-library
    boundary (and the name libhakmem.so belongs to the preload target).
    """
    cc_library(
        name = name,
        copts = HAKMEM_COPTS + copts,
        linkstatic = 1,
        **kwargs
    )
