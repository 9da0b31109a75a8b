"""Build settings shared by every hakmem library."""

load("@rules_cc//cc:defs.bzl", "cc_library")

# Hidden visibility: in libhakmem.so, internal globals (the registry table,
# the free key) are then reached without a GOT load on the fast paths; the
# override layer marks the exported allocator symbols explicitly.
HAKMEM_COPTS = ["-fvisibility=hidden"]

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
