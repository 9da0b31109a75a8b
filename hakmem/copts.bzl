"""Compiler options shared by every hakmem library."""

# Hidden visibility: in libhakmem.so, internal globals (the registry table,
# the free key) are then reached without a GOT load on the fast paths; the
# override layer marks the exported allocator symbols explicitly.
HAKMEM_COPTS = ["-fvisibility=hidden"]
