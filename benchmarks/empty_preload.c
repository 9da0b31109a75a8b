// A shared library with nothing in it: preloaded by //benchmarks:startup, it
// shows what LD_PRELOAD of any library costs a short-lived program (the
// floor under an allocator's start-up cost).
int hakmem_bench_empty_preload_marker(void) { return 0; }
